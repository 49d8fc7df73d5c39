//! The published test vectors of RFC 4226 (HOTP) and RFC 6238 (TOTP), checked through
//! every public code-producing entry point of `tollgate_engine::otp`.

use tollgate_engine::otp::{
    code_at, current_code, hotp, totp_counter, verify, Algorithm, TokenKind, TokenParams,
    TokenState, Verdict, VerifyPolicy,
};

/// The RFC 4226 Appendix D secret, also the RFC 6238 SHA-1 seed.
const SEED_SHA1: &[u8] = b"12345678901234567890";
/// The RFC 6238 Appendix B seed for HMAC-SHA-256 (32 bytes).
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
/// The RFC 6238 Appendix B seed for HMAC-SHA-512 (64 bytes).
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// RFC 4226 Appendix D: counter, 31-bit truncated value, six-digit HOTP.
const RFC4226: [(u64, u32, &str); 10] = [
    (0, 1_284_755_224, "755224"),
    (1, 1_094_287_082, "287082"),
    (2, 137_359_152, "359152"),
    (3, 1_726_969_429, "969429"),
    (4, 1_640_338_314, "338314"),
    (5, 868_254_676, "254676"),
    (6, 1_918_287_922, "287922"),
    (7, 82_162_583, "162583"),
    (8, 673_399_871, "399871"),
    (9, 645_520_489, "520489"),
];

/// RFC 6238 Appendix B: time, time step T, and the eight-digit TOTP for SHA-1, SHA-256 and
/// SHA-512.
const RFC6238: [(u64, u64, [&str; 3]); 6] = [
    (59, 0x1, ["94287082", "46119246", "90693936"]),
    (
        1_111_111_109,
        0x23523EC,
        ["07081804", "68084774", "25091201"],
    ),
    (
        1_111_111_111,
        0x23523ED,
        ["14050471", "67062674", "99943326"],
    ),
    (
        1_234_567_890,
        0x273EF07,
        ["89005924", "91819424", "93441116"],
    ),
    (
        2_000_000_000,
        0x3F940AA,
        ["69279037", "90698825", "38618901"],
    ),
    (
        20_000_000_000,
        0x27BC86AA,
        ["65353130", "77737706", "47863826"],
    ),
];

#[test]
fn rfc4226_appendix_d() {
    let params = TokenParams {
        kind: TokenKind::Hotp,
        algorithm: Algorithm::Sha1,
        digits: 6,
    };
    for (counter, truncated, expected) in RFC4226 {
        // Asking for ten digits exposes the truncated value itself.
        assert_eq!(hotp(SEED_SHA1, counter, Algorithm::Sha1, 10), truncated);
        assert_eq!(
            hotp(SEED_SHA1, counter, Algorithm::Sha1, 6),
            expected.parse::<u32>().unwrap()
        );
        let mut out = [0u8; 8];
        assert_eq!(
            code_at(SEED_SHA1, &params, counter, &mut out),
            expected.as_bytes()
        );
        let state = TokenState {
            next_counter: counter,
            drift: 0,
        };
        assert_eq!(
            current_code(SEED_SHA1, &params, &state, 0, &mut out),
            expected.as_bytes()
        );
        assert_eq!(
            verify(
                SEED_SHA1,
                &params,
                &state,
                expected.as_bytes(),
                0,
                &VerifyPolicy::default()
            ),
            Verdict::Accepted {
                counter,
                state: TokenState {
                    next_counter: counter + 1,
                    drift: 0
                }
            }
        );
    }
}

#[test]
fn rfc6238_appendix_b() {
    let seeds = [
        (Algorithm::Sha1, SEED_SHA1),
        (Algorithm::Sha256, SEED_SHA256),
        (Algorithm::Sha512, SEED_SHA512),
    ];
    for (time, step, codes) in RFC6238 {
        assert_eq!(totp_counter(time, 30, 0), step);
        for ((algorithm, seed), expected) in seeds.into_iter().zip(codes) {
            let params = TokenParams {
                kind: TokenKind::Totp { period: 30, t0: 0 },
                algorithm,
                digits: 8,
            };
            let mut out = [0u8; 8];
            assert_eq!(
                current_code(seed, &params, &TokenState::default(), time, &mut out),
                expected.as_bytes(),
                "{algorithm} at {time}"
            );
            assert_eq!(code_at(seed, &params, step, &mut out), expected.as_bytes());
            let verdict = verify(
                seed,
                &params,
                &TokenState::default(),
                expected.as_bytes(),
                time,
                &VerifyPolicy::default(),
            );
            assert_eq!(
                verdict,
                Verdict::Accepted {
                    counter: step,
                    state: TokenState {
                        next_counter: step + 1,
                        drift: 0
                    }
                },
                "{algorithm} at {time}"
            );
        }
    }
}

#[test]
fn rfc6238_vectors_with_a_shifted_epoch() {
    // Moving T0 and the clock by the same amount must not change the code.
    let params = TokenParams {
        kind: TokenKind::Totp {
            period: 30,
            t0: 1_000_000,
        },
        algorithm: Algorithm::Sha1,
        digits: 8,
    };
    let mut out = [0u8; 8];
    for (time, _, [sha1, _, _]) in RFC6238 {
        assert_eq!(
            current_code(
                SEED_SHA1,
                &params,
                &TokenState::default(),
                time + 1_000_000,
                &mut out
            ),
            sha1.as_bytes()
        );
    }
}
