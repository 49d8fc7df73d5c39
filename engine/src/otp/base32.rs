//! RFC 4648 base32, the encoding authenticator apps use for shared secrets.
//!
//! Encoding writes the canonical form (upper case, no `=` padding, as `otpauth://` URIs
//! expect). Decoding is lenient about what people do when they copy a secret by hand
//! (lower case, spaces between groups, trailing padding) and strict about everything that
//! suggests a typo, with an error that says which character is wrong.

/// The RFC 4648 section 6 alphabet; a symbol's value is its index.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Encodes `data` as RFC 4648 base32: upper case, no padding.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    for &byte in data {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(buffer >> bits));
        }
        // Only the `bits` low bits are still pending; dropping the rest keeps the shift
        // above from overflowing.
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        // The final partial group is padded with zero bits on the right.
        out.push(symbol(buffer << (5 - bits)));
    }
    out
}

/// The alphabet symbol for the low five bits of `value`.
fn symbol(value: u16) -> char {
    char::from(ALPHABET[usize::from(value & 0x1f)])
}

/// Why [`decode`] refused a string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Base32Error {
    /// A character outside the base32 alphabet (`A`-`Z`, `2`-`7`, either case).
    #[error("invalid base32 character {character:?} at position {position} (only A-Z and 2-7 are allowed)")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its zero-based position in the input, counted in characters.
        position: usize,
    },
    /// A symbol after `=` padding, which can only come from two secrets pasted together.
    #[error("base32 symbol after '=' padding at position {position}")]
    DataAfterPadding {
        /// The zero-based position of the symbol, counted in characters.
        position: usize,
    },
    /// A symbol count that no encoder produces (1, 3 or 6 more than a multiple of 8),
    /// which means part of the secret was lost in copying.
    #[error("base32 input has {symbols} symbols, which no encoding produces; is part of the secret missing?")]
    InvalidLength {
        /// The number of alphabet symbols in the input.
        symbols: usize,
    },
}

/// Decodes RFC 4648 base32: case-insensitive, ignoring ASCII whitespace anywhere and `=`
/// padding at the end.
///
/// Any other character is an error naming it, as is a symbol after padding or a symbol
/// count no encoder can produce. Leftover bits of the final symbol are ignored rather than
/// required to be zero, as most authenticator apps do.
pub fn decode(s: &str) -> Result<Vec<u8>, Base32Error> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer: u16 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    let mut padded = false;
    for (position, character) in s.chars().enumerate() {
        if character.is_ascii_whitespace() {
            continue;
        }
        if character == '=' {
            padded = true;
            continue;
        }
        let Some(value) = symbol_value(character) else {
            return Err(Base32Error::InvalidCharacter {
                character,
                position,
            });
        };
        if padded {
            return Err(Base32Error::DataAfterPadding { position });
        }
        symbols += 1;
        buffer = (buffer << 5) | u16::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Keep the top eight of the pending bits; the narrowing drops only bits that
            // were already emitted.
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if matches!(symbols % 8, 1 | 3 | 6) {
        return Err(Base32Error::InvalidLength { symbols });
    }
    Ok(out)
}

/// The value of a base32 symbol, accepting lower case.
fn symbol_value(character: char) -> Option<u8> {
    match character.to_ascii_uppercase() {
        c @ 'A'..='Z' => Some(c as u8 - b'A'),
        c @ '2'..='7' => Some(c as u8 - b'2' + 26),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10 test vectors, with the padding removed.
    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ];

    #[test]
    fn rfc_4648_vectors() {
        for (plain, encoded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).as_deref(), Ok(plain.as_bytes()));
        }
    }

    #[test]
    fn padded_vectors_decode() {
        assert_eq!(decode("MY======").as_deref(), Ok(&b"f"[..]));
        assert_eq!(decode("MZXW6YQ=").as_deref(), Ok(&b"foob"[..]));
        assert_eq!(decode("MZXW6YTBOI======").as_deref(), Ok(&b"foobar"[..]));
    }

    #[test]
    fn lenient_about_case_and_spaces() {
        assert_eq!(decode("mzxw 6ytb oi").as_deref(), Ok(&b"foobar"[..]));
        assert_eq!(decode(" MzXw6YtBoI\n").as_deref(), Ok(&b"foobar"[..]));
        assert_eq!(
            decode("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ").as_deref(),
            Ok(&b"12345678901234567890"[..])
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            decode("MZXW1YTB"),
            Err(Base32Error::InvalidCharacter {
                character: '1',
                position: 4
            })
        );
        assert_eq!(
            decode("ab é"),
            Err(Base32Error::InvalidCharacter {
                character: 'é',
                position: 3
            })
        );
        assert_eq!(
            decode("MY==MY"),
            Err(Base32Error::DataAfterPadding { position: 4 })
        );
        assert_eq!(decode("M"), Err(Base32Error::InvalidLength { symbols: 1 }));
        assert_eq!(
            decode("MZX"),
            Err(Base32Error::InvalidLength { symbols: 3 })
        );
        assert_eq!(
            decode("MZXW6Y"),
            Err(Base32Error::InvalidLength { symbols: 6 })
        );
        let message = decode("abc0").unwrap_err().to_string();
        assert!(message.contains("'0'"), "{message}");
    }
}
