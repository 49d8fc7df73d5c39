//! `tollgate radius-test`: one Access-Request to a RADIUS server, and a verdict an operator
//! can act on: `OK`, `shared secret mismatch` or `timed out`.
//!
//! The reply is trusted only after its Response Authenticator (and Message-Authenticator)
//! verify with the secret given: a reply that does not verify means the two sides hold
//! different secrets. A server that drops requests whose Message-Authenticator does not
//! verify (as Tollgate does, per RFC 3579) sends nothing back on a secret mismatch; the
//! verdict is then `timed out`, with that hint.

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use rand::RngCore;
use tollgate_engine::radius::{
    attr, encode_request, hide_password, verify_response, Code, Packet, MAX_PASSWORD_LEN,
};

use super::{read_stdin_line, CliError};

#[derive(Debug, Args)]
pub struct RadiusTestArgs {
    /// Server address and port.
    #[arg(long)]
    server: SocketAddr,
    /// Read the shared secret from standard input (required).
    #[arg(long, required = true)]
    secret_stdin: bool,
    /// User name to send.
    #[arg(long)]
    user: String,
    /// Password (with the passcode appended, for append-mode clients).
    #[arg(long)]
    password: String,
    /// Seconds to wait for each attempt.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
    /// Attempts before giving up.
    #[arg(long, default_value_t = 2)]
    attempts: u32,
}

/// The verdict of a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server answered and its reply verifies; the reply code.
    Ok(Code),
    /// The server answered with a reply that does not verify with our secret.
    SecretMismatch,
    /// No answer.
    TimedOut,
}

/// Sends the request and waits for a verified reply.
pub fn test_server(
    server: SocketAddr,
    secret: &[u8],
    user: &str,
    password: &[u8],
    timeout: Duration,
    attempts: u32,
) -> Result<Verdict, CliError> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(server)?;
    let mut authenticator = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut authenticator);
    let mut hidden = [0u8; MAX_PASSWORD_LEN];
    let n = hide_password(password, secret, &authenticator, &mut hidden)
        .map_err(|e| CliError(format!("password: {e}")))?;
    let identifier = authenticator[0] ^ authenticator[15];
    let attributes = [
        (attr::USER_NAME, user.as_bytes()),
        (attr::USER_PASSWORD, &hidden[..n]),
        (attr::NAS_IDENTIFIER, b"tollgate-radius-test".as_slice()),
    ];
    let encode = |message_authenticator: bool| -> Result<Vec<u8>, CliError> {
        let mut out = Vec::new();
        encode_request(
            &mut out,
            Code::AccessRequest,
            identifier,
            &authenticator,
            secret,
            &attributes,
            message_authenticator,
        )
        .map_err(|e| CliError(format!("cannot encode the request: {e}")))?;
        Ok(out)
    };
    // Signed attempts first. If none is answered, one last unsigned attempt: a server that
    // does not require Message-Authenticator answers it, and a reply that does not verify
    // then tells a secret mismatch apart from a dead server.
    let signed = encode(true)?;
    let unsigned = encode(false)?;
    let plan =
        std::iter::repeat_n(&signed, attempts.max(1) as usize).chain(std::iter::once(&unsigned));
    let mut buf = [0u8; 4096];
    for out in plan {
        socket.send(out)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        // Nothing listens there; waiting longer will not help.
                        return Ok(Verdict::TimedOut);
                    }
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let Ok(reply) = Packet::decode(&buf[..n]) else {
                continue;
            };
            if reply.identifier() != identifier {
                continue;
            }
            return Ok(
                match verify_response(reply, &authenticator, secret, false) {
                    Ok(v) => Verdict::Ok(v.code()),
                    Err(_) => Verdict::SecretMismatch,
                },
            );
        }
    }
    Ok(Verdict::TimedOut)
}

pub fn run(args: RadiusTestArgs) -> Result<ExitCode, CliError> {
    let secret = read_stdin_line("shared secret")?;
    let verdict = test_server(
        args.server,
        secret.as_bytes(),
        &args.user,
        args.password.as_bytes(),
        Duration::from_secs(args.timeout.max(1)),
        args.attempts,
    )?;
    Ok(match verdict {
        Verdict::Ok(code) => {
            let name = match code {
                Code::AccessAccept => "Access-Accept",
                Code::AccessReject => "Access-Reject",
                Code::AccessChallenge => "Access-Challenge",
                _ => "another reply",
            };
            println!("OK ({name})");
            ExitCode::SUCCESS
        }
        Verdict::SecretMismatch => {
            println!("shared secret mismatch");
            ExitCode::from(2)
        }
        Verdict::TimedOut => {
            println!("timed out");
            eprintln!(
                "no verified answer from {}: the server is down or unreachable, or it dropped \
                 the request (a server that requires Message-Authenticator drops requests \
                 signed with another shared secret)",
                args.server
            );
            ExitCode::from(3)
        }
    })
}
