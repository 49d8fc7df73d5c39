//! Delivered codes: the one-time codes Tollgate sends by SMS, e-mail or voice (real-time
//! codes at login, preload day codes ahead of it), and how a destination is shown to the
//! user without giving it away.

use subtle::ConstantTimeEq;

/// The shortest and longest delivered code.
pub const CODE_DIGITS: std::ops::RangeInclusive<u8> = 6..=10;

/// A numeric code of `digits` digits (6 to 10, clamped) from 8 random bytes. The modulo
/// bias is below 10^10 / 2^64 (about 2^-30), far under a guess's odds.
pub fn numeric_code(random: [u8; 8], digits: u8) -> String {
    let digits = digits.clamp(*CODE_DIGITS.start(), *CODE_DIGITS.end());
    let modulus = 10u64.pow(u32::from(digits));
    let n = u64::from_be_bytes(random) % modulus;
    format!("{n:0width$}", width = usize::from(digits))
}

/// Compares a typed code with the one sent, in constant time for equal lengths.
pub fn code_matches(sent: &[u8], typed: &[u8]) -> bool {
    sent.len() == typed.len() && bool::from(sent.ct_eq(typed))
}

/// A destination as the user may see it in a prompt: the last four digits of a number
/// (`...7391`), or the first letter and the domain of an address (`a***@example.com`).
pub fn masked(destination: &str) -> String {
    if let Some((local, domain)) = destination.rsplit_once('@') {
        let first = local.chars().next().map(String::from).unwrap_or_default();
        return format!("{first}***@{domain}");
    }
    let digits: Vec<char> = destination.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_have_their_digits_and_leading_zeros() {
        assert_eq!(numeric_code([0; 8], 6), "000000");
        assert_eq!(numeric_code([0xff; 8], 6).len(), 6);
        assert_eq!(numeric_code([0, 0, 0, 0, 0, 0, 0, 42], 8), "00000042");
        assert_eq!(numeric_code([1; 8], 3).len(), 6, "clamped to six digits");
        assert_eq!(numeric_code([1; 8], 40).len(), 10, "clamped to ten digits");
    }

    #[test]
    fn destinations_are_masked() {
        assert_eq!(masked("+44 7700 907391"), "...7391");
        assert_eq!(masked("alice@example.com"), "a***@example.com");
        assert_eq!(masked("12"), "...12");
        assert_eq!(masked(""), "...");
    }

    #[test]
    fn codes_compare_exactly() {
        assert!(code_matches(b"123456", b"123456"));
        assert!(!code_matches(b"123456", b"123457"));
        assert!(!code_matches(b"123456", b"12345"));
        assert!(!code_matches(b"", b"1"));
    }

    proptest! {
        #[test]
        fn every_code_is_all_digits(random in any::<[u8; 8]>(), digits in 0u8..20) {
            let code = numeric_code(random, digits);
            prop_assert!(code.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(CODE_DIGITS.contains(&(code.len() as u8)));
        }

        #[test]
        fn masking_never_panics_and_hides_most_of_a_number(d in "\\PC{0,40}") {
            let m = masked(&d);
            prop_assert!(m.chars().count() <= d.chars().count() + 4);
        }
    }
}
