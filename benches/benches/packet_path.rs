//! Times each step of the per-packet path of an append-mode login, and the whole path for an
//! accept and for a reject.
//!
//! Run with `cargo bench -p tollgate-benches --bench packet_path`. Every step works on the
//! fixed request of [`tollgate_benches::Fixture`], so the figures of two runs are comparable.

use std::hint::black_box;
use std::process::ExitCode;

use criterion::Criterion;
use tollgate_benches::{
    decide, per_packet_path, reply_buffer, token_params, token_state, BenchError, Fixture, NOW,
    PASSWORD, SECRET, TOTP_SEED,
};
use tollgate_engine::login::{split_appended, Outcome, RejectReason};
use tollgate_engine::otp;
use tollgate_engine::radius::{
    attr, encode_reply, unhide_password, verify_request, Code, Packet, MAX_PASSWORD_LEN,
};

/// Everything the timed closures borrow, built and checked before any timing starts.
struct Setup {
    fixture: Fixture,
}

impl Setup {
    /// Builds the fixture and checks that the accept and reject paths conclude what their
    /// names say, so that a broken fixture cannot be timed as if it were the real path.
    fn new() -> Result<Setup, String> {
        let fixture = Fixture::new().map_err(|e| e.to_string())?;
        let mut reply = reply_buffer();
        let accept = per_packet_path(&fixture.accept_request, &token_state(), &mut reply)
            .map_err(|e| e.to_string())?;
        if accept != Outcome::Accept {
            return Err(format!("the accept request concluded {accept:?}"));
        }
        let reject = per_packet_path(&fixture.reject_request, &token_state(), &mut reply)
            .map_err(|e| e.to_string())?;
        if reject != Outcome::Reject(RejectReason::BadPasscode) {
            return Err(format!("the reject request concluded {reject:?}"));
        }
        Ok(Setup { fixture })
    }
}

/// Times every step on its own, each fed with the output of the steps before it.
fn steps(c: &mut Criterion, setup: &Setup) -> Result<(), BenchError> {
    let datagram = &setup.fixture.accept_request[..];
    c.bench_function("decode", |b| b.iter(|| Packet::decode(black_box(datagram))));

    let packet = Packet::decode(datagram)?;
    c.bench_function("verify_request", |b| {
        b.iter(|| verify_request(black_box(packet), black_box(SECRET), true))
    });

    let request = verify_request(packet, SECRET, true)?;
    let hidden = request
        .attribute(attr::USER_PASSWORD)
        .ok_or(BenchError::MissingUserPassword)?;
    let authenticator = request.authenticator();
    let mut clear = [0u8; MAX_PASSWORD_LEN];
    c.bench_function("unhide_password", |b| {
        b.iter(|| {
            unhide_password(
                black_box(hidden),
                black_box(SECRET),
                black_box(authenticator),
                &mut clear,
            )
            .map(<[u8]>::len)
        })
    });

    let params = token_params();
    let field = &setup.fixture.field[..];
    c.bench_function("split_appended", |b| {
        b.iter(|| split_appended(black_box(field), black_box(params.digits)))
    });
    let state = token_state();
    c.bench_function("otp_verify", |b| {
        b.iter(|| decide(black_box(field), black_box(&state)))
    });
    let wrong_field = [PASSWORD, &setup.fixture.wrong_passcode].concat();
    c.bench_function("otp_verify_reject", |b| {
        b.iter(|| decide(black_box(&wrong_field), black_box(&state)))
    });
    // A single HMAC-SHA-1 code, to read the window's cost as three of these plus the rest.
    let raw = otp::totp_counter(NOW, 30, 0);
    let mut code = [0u8; 8];
    c.bench_function("otp_code_at", |b| {
        b.iter(|| otp::code_at(black_box(&TOTP_SEED), &params, black_box(raw), &mut code).len())
    });

    let mut reply = reply_buffer();
    c.bench_function("encode_reply", |b| {
        b.iter(|| {
            encode_reply(
                &mut reply,
                black_box(Code::AccessAccept),
                black_box(&request),
                black_box(SECRET),
                &[],
            )
        })
    });
    Ok(())
}

/// Times the whole path, from datagram to encoded reply, for an accept and for a reject.
fn whole(c: &mut Criterion, setup: &Setup) {
    let state = token_state();
    let mut reply = reply_buffer();
    let accept = &setup.fixture.accept_request[..];
    c.bench_function("whole_path", |b| {
        b.iter(|| per_packet_path(black_box(accept), black_box(&state), &mut reply))
    });
    // The wrong passcode still costs the full window, because verification compares every
    // candidate in constant time; this figure should sit next to the accept one.
    let reject = &setup.fixture.reject_request[..];
    c.bench_function("whole_path_reject", |b| {
        b.iter(|| per_packet_path(black_box(reject), black_box(&state), &mut reply))
    });
}

fn main() -> ExitCode {
    let setup = match Setup::new() {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("packet_path: the fixture is broken: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut c = Criterion::default().configure_from_args();
    if let Err(e) = steps(&mut c, &setup) {
        eprintln!("packet_path: a step could not be prepared: {e}");
        return ExitCode::FAILURE;
    }
    whole(&mut c, &setup);
    c.final_summary();
    ExitCode::SUCCESS
}
