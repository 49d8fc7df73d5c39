//! Code generation: the RFC 4226 HMAC-and-truncate function, the RFC 6238 time-step
//! counter, and the zero-padded ASCII rendering of a code.
//!
//! These functions are total: any key length (including empty), any counter, any time and
//! any digit count produce a value without panicking or allocating, because
//! [`super::verify`] calls them for every candidate counter of every login attempt.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::{Algorithm, TokenKind, TokenParams, TokenState};

/// Computes the HOTP value of `key` at `counter` (RFC 4226 section 5.3): HMAC the 8-byte
/// big-endian counter, take the 31-bit dynamic truncation and reduce it modulo
/// `10^digits`.
///
/// Any key length is accepted because HMAC hashes long keys and zero-pads short ones.
/// `digits` of 10 or more returns the full 31-bit truncated value, since it never
/// reaches ten decimal digits' worth of modulus.
pub fn hotp(key: &[u8], counter: u64, algorithm: Algorithm, digits: u8) -> u32 {
    // HMAC accepts keys of every length, so the `None` branch cannot be taken with the
    // RustCrypto implementation; zero keeps the function total should that ever change.
    // `verify` does not rely on this fallback: it treats `None` as "matches nothing".
    hotp_checked(key, counter, algorithm, digits).unwrap_or(0)
}

/// [`hotp`] that reports an HMAC set-up failure as `None` instead of a value, so that
/// verification can make such a candidate match nothing.
pub(crate) fn hotp_checked(
    key: &[u8],
    counter: u64,
    algorithm: Algorithm,
    digits: u8,
) -> Option<u32> {
    let message = counter.to_be_bytes();
    let truncated = match algorithm {
        Algorithm::Sha1 => truncate_with::<Hmac<Sha1>>(key, &message)?,
        Algorithm::Sha256 => truncate_with::<Hmac<Sha256>>(key, &message)?,
        Algorithm::Sha512 => truncate_with::<Hmac<Sha512>>(key, &message)?,
    };
    Some(match 10u32.checked_pow(u32::from(digits)) {
        Some(modulus) => truncated % modulus,
        None => truncated,
    })
}

/// An HMAC keyed once for one token, to compute the codes of many counters.
///
/// Keying HMAC hashes the inner and outer pads; doing it once per verification instead of
/// once per candidate counter halves the hashing of a window, which is most of the cost of
/// a passcode check.
#[derive(Clone)]
pub(crate) enum KeyedHmac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl KeyedHmac {
    /// Keys the HMAC of `algorithm` with `key`; `None` only if HMAC refused the key.
    pub(crate) fn new(key: &[u8], algorithm: Algorithm) -> Option<KeyedHmac> {
        Some(match algorithm {
            Algorithm::Sha1 => KeyedHmac::Sha1(<Hmac<Sha1> as Mac>::new_from_slice(key).ok()?),
            Algorithm::Sha256 => {
                KeyedHmac::Sha256(<Hmac<Sha256> as Mac>::new_from_slice(key).ok()?)
            }
            Algorithm::Sha512 => {
                KeyedHmac::Sha512(<Hmac<Sha512> as Mac>::new_from_slice(key).ok()?)
            }
        })
    }

    /// The HOTP value at `counter`, as [`hotp_checked`] computes it.
    pub(crate) fn value(&self, counter: u64, digits: u8) -> Option<u32> {
        fn run<M: Mac + Clone>(mac: &M, message: &[u8]) -> Option<u32> {
            let mut mac = mac.clone();
            mac.update(message);
            dynamic_truncation(&mac.finalize().into_bytes())
        }
        let message = counter.to_be_bytes();
        let truncated = match self {
            KeyedHmac::Sha1(m) => run(m, &message)?,
            KeyedHmac::Sha256(m) => run(m, &message)?,
            KeyedHmac::Sha512(m) => run(m, &message)?,
        };
        Some(match 10u32.checked_pow(u32::from(digits)) {
            Some(modulus) => truncated % modulus,
            None => truncated,
        })
    }
}

/// HMACs `message` under `key` with the MAC `M` and applies RFC 4226 dynamic truncation.
fn truncate_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Option<u32> {
    let mut mac = <M as Mac>::new_from_slice(key).ok()?;
    mac.update(message);
    dynamic_truncation(&mac.finalize().into_bytes())
}

/// RFC 4226 section 5.3 "DT": the low nibble of the last byte picks four bytes, whose top
/// bit is masked off so the result reads the same as a signed or unsigned integer.
fn dynamic_truncation(digest: &[u8]) -> Option<u32> {
    let offset = usize::from(digest.last()? & 0x0f);
    let window = digest.get(offset..offset.checked_add(4)?)?;
    let bytes: [u8; 4] = window.try_into().ok()?;
    Some(u32::from_be_bytes(bytes) & 0x7fff_ffff)
}

/// Computes the RFC 6238 time-step counter `T = (unix_time - t0) / period`.
///
/// Times before `t0` count as step 0 rather than wrapping, and a `period` of 0 (which
/// [`TokenParams::validate`] refuses) also yields 0 instead of dividing by zero.
pub fn totp_counter(unix_time: u64, period: u32, t0: u64) -> u64 {
    unix_time
        .saturating_sub(t0)
        .checked_div(u64::from(period))
        .unwrap_or(0)
}

/// The current code as ASCII digits, zero-padded (for the demo, tests, the load harness):
/// writes into `out` and returns the used slice.
///
/// For TOTP this is the code a token whose clock is off by the learnt `state.drift` shows
/// at `unix_time`, that is the code at the counter [`super::verify`] centres its window
/// on. For HOTP it is the code at `state.next_counter`, the next press. Parameters that
/// fail [`TokenParams::validate`] give an empty slice.
pub fn current_code<'o>(
    key: &[u8],
    params: &TokenParams,
    state: &TokenState,
    unix_time: u64,
    out: &'o mut [u8; 8],
) -> &'o [u8] {
    let counter = match params.kind {
        TokenKind::Totp { period, t0 } => {
            totp_counter(unix_time, period, t0).saturating_add_signed(state.drift)
        }
        TokenKind::Hotp => state.next_counter,
    };
    code_at(key, params, counter, out)
}

/// The code at `counter` as ASCII digits, zero-padded to `params.digits`: writes into
/// `out` and returns the used slice. Parameters that fail [`TokenParams::validate`] give an
/// empty slice.
pub fn code_at<'o>(
    key: &[u8],
    params: &TokenParams,
    counter: u64,
    out: &'o mut [u8; 8],
) -> &'o [u8] {
    if params.validate().is_err() {
        return &out[..0];
    }
    let value = hotp(key, counter, params.algorithm, params.digits);
    render(value, params.digits, out)
}

/// Writes `value` as exactly `digits` ASCII digits (keeping the low-order ones and padding
/// with leading zeros) and returns that prefix of `out`; `digits` above 8 is cut to 8.
pub(crate) fn render(mut value: u32, digits: u8, out: &mut [u8; 8]) -> &[u8] {
    let used = &mut out[..usize::from(digits.min(8))];
    for slot in used.iter_mut().rev() {
        // `value % 10` is below 10, so the narrowing cannot lose anything.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_truncation_example_from_rfc_4226() {
        // RFC 4226 section 5.4 works this HMAC-SHA-1 value through by hand.
        let digest = [
            0x1f, 0x86, 0x98, 0x69, 0x0e, 0x02, 0xca, 0x16, 0x61, 0x85, 0x50, 0xef, 0x7f, 0x19,
            0xda, 0x8e, 0x94, 0x5b, 0x55, 0x5a,
        ];
        assert_eq!(dynamic_truncation(&digest), Some(0x50ef_7f19));
        assert_eq!(0x50ef_7f19 % 1_000_000, 872_921);
    }

    #[test]
    fn dynamic_truncation_of_short_input_is_none() {
        assert_eq!(dynamic_truncation(&[]), None);
        assert_eq!(dynamic_truncation(&[0x0f]), None);
        assert_eq!(dynamic_truncation(&[1, 2, 3, 4, 0x00]), Some(0x0102_0304));
    }

    #[test]
    fn totp_counter_edges() {
        assert_eq!(totp_counter(59, 30, 0), 1);
        assert_eq!(totp_counter(60, 30, 0), 2);
        assert_eq!(totp_counter(10, 30, 100), 0);
        assert_eq!(totp_counter(u64::MAX, 0, 0), 0);
        assert_eq!(totp_counter(u64::MAX, 1, 0), u64::MAX);
        assert_eq!(totp_counter(1000, 60, 1000), 0);
        assert_eq!(totp_counter(1060, 60, 1000), 1);
    }

    #[test]
    fn render_pads_and_cuts() {
        let mut out = [0u8; 8];
        assert_eq!(render(42, 6, &mut out), b"000042");
        assert_eq!(render(12_345_678, 8, &mut out), b"12345678");
        assert_eq!(render(1_234_567_890, 8, &mut out), b"34567890");
        assert_eq!(render(7, 0, &mut out), b"");
        assert_eq!(render(u32::MAX, 255, &mut out), b"94967295");
    }

    #[test]
    fn hotp_digits_extremes_do_not_panic() {
        let key = b"12345678901234567890";
        assert_eq!(hotp(key, 0, Algorithm::Sha1, 0), 0);
        assert_eq!(hotp(key, 0, Algorithm::Sha1, 10), 1_284_755_224);
        assert_eq!(hotp(key, 0, Algorithm::Sha1, 255), 1_284_755_224);
        assert_eq!(hotp(key, 0, Algorithm::Sha1, 9), 284_755_224);
    }

    #[test]
    fn invalid_params_give_empty_code() {
        let mut out = [0u8; 8];
        let params = TokenParams {
            digits: 9,
            ..TokenParams::default()
        };
        assert_eq!(code_at(b"k", &params, 1, &mut out), b"");
        let state = TokenState::default();
        assert_eq!(current_code(b"k", &params, &state, 1, &mut out), b"");
    }
}
