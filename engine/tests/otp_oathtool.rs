//! Cross-checks of our HOTP and TOTP codes against OATH Toolkit's `oathtool`, an
//! independent implementation, for random keys, counters, times and parameters.
//!
//! The binary is required: a missing `oathtool` fails these tests with instructions rather
//! than skipping them, so that a machine without it cannot report a green run that checked
//! nothing.

use std::process::Command;

use proptest::prelude::*;
use tollgate_engine::otp::{
    code_at, totp_counter, verify, Algorithm, TokenKind, TokenParams, TokenState, Verdict,
    VerifyPolicy,
};

/// Runs `oathtool` with `args` and returns its output lines, failing the test with
/// instructions if the binary is absent or refuses the arguments.
fn oathtool(args: &[String]) -> Vec<String> {
    let output = match Command::new("oathtool").args(args).output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "the oathtool binary was not found; install the Debian package oathtool \
             (apt-get install oathtool) to run these cross-checks"
        ),
        Err(error) => panic!("could not run oathtool: {error}"),
    };
    assert!(
        output.status.success(),
        "oathtool {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("oathtool prints ASCII")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn oathtool_mode(algorithm: Algorithm) -> String {
    format!("--totp={}", algorithm.as_str().to_lowercase())
}

/// How many codes past the first each `oathtool` call prints, so one process checks
/// several counters.
const EXTRA: u64 = 3;

fn check_totp(key: &[u8], algorithm: Algorithm, digits: u8, period: u32, t0: u64, time: u64) {
    let lines = oathtool(&[
        oathtool_mode(algorithm),
        format!("--digits={digits}"),
        format!("--time-step-size={period}s"),
        format!("--start-time=@{t0}"),
        format!("--now=@{time}"),
        format!("--window={EXTRA}"),
        hex(key),
    ]);
    assert_eq!(lines.len() as u64, EXTRA + 1, "{lines:?}");
    let params = TokenParams {
        kind: TokenKind::Totp { period, t0 },
        algorithm,
        digits,
    };
    let first = totp_counter(time, period, t0);
    for (counter, expected) in (first..=u64::MAX).zip(&lines) {
        let mut out = [0u8; 8];
        assert_eq!(
            code_at(key, &params, counter, &mut out),
            expected.as_bytes(),
            "key {} {algorithm} digits {digits} period {period} t0 {t0} time {time} step {counter}",
            hex(key)
        );
    }
    // The code oathtool calls current must also pass our verification.
    let verdict = verify(
        key,
        &params,
        &TokenState::default(),
        lines[0].as_bytes(),
        time,
        &VerifyPolicy::default(),
    );
    assert!(
        matches!(verdict, Verdict::Accepted { .. }),
        "{verdict:?} for oathtool's current code"
    );
}

fn check_hotp(key: &[u8], digits: u8, counter: u64) {
    let lines = oathtool(&[
        "--hotp".to_owned(),
        format!("--digits={digits}"),
        format!("--counter={counter}"),
        format!("--window={EXTRA}"),
        hex(key),
    ]);
    assert_eq!(lines.len() as u64, EXTRA + 1, "{lines:?}");
    let params = TokenParams {
        kind: TokenKind::Hotp,
        algorithm: Algorithm::Sha1,
        digits,
    };
    for (c, expected) in (counter..=u64::MAX).zip(&lines) {
        let mut out = [0u8; 8];
        assert_eq!(
            code_at(key, &params, c, &mut out),
            expected.as_bytes(),
            "key {} digits {digits} counter {c}",
            hex(key)
        );
    }
}

#[test]
fn oathtool_reproduces_rfc_vectors() {
    // Agreement on the published vectors shows the invocation itself is right, so a
    // failure in the random cases below points at our code rather than at the harness.
    check_hotp(b"12345678901234567890", 6, 0);
    check_totp(b"12345678901234567890", Algorithm::Sha1, 8, 30, 0, 59);
    check_totp(
        b"12345678901234567890123456789012",
        Algorithm::Sha256,
        8,
        30,
        0,
        1_111_111_109,
    );
    check_totp(
        b"1234567890123456789012345678901234567890123456789012345678901234",
        Algorithm::Sha512,
        8,
        30,
        0,
        20_000_000_000,
    );
}

#[test]
fn edge_keys_and_counters() {
    // Empty, block-sized and longer-than-a-block keys take different HMAC key paths.
    for key in [
        vec![],
        vec![0u8],
        vec![0xa5; 64],
        vec![0x3c; 65],
        vec![0x7e; 129],
    ] {
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            check_totp(&key, algorithm, 6, 30, 0, 1_700_000_000);
        }
        check_hotp(&key, 8, 0);
    }
    check_hotp(b"k", 6, u64::MAX - EXTRA);
    check_hotp(b"k", 7, 1 << 32);
    check_totp(b"k", Algorithm::Sha1, 7, 1, 0, 0);
}

fn any_algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

proptest! {
    // Every case starts a process, so fewer cases than the default keep the suite quick
    // while still covering each algorithm and digit count many times over.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn totp_matches_oathtool(
        key in proptest::collection::vec(any::<u8>(), 1..=160),
        algorithm in any_algorithm(),
        digits in 6u8..=8,
        period in prop_oneof![Just(30u32), Just(60), 1u32..=3600],
        t0 in prop_oneof![Just(0u64), 0u64..1_000_000_000],
        time in prop_oneof![1_000_000_000u64..4_000_000_000, 0u64..40_000_000_000],
    ) {
        check_totp(&key, algorithm, digits, period, t0, time.max(t0));
    }

    #[test]
    fn hotp_matches_oathtool(
        key in proptest::collection::vec(any::<u8>(), 1..=160),
        digits in 6u8..=8,
        counter in prop_oneof![0u64..1000, any::<u64>().prop_map(|c| c.saturating_sub(EXTRA))],
    ) {
        check_hotp(&key, digits, counter);
    }
}
