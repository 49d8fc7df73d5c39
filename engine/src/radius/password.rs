//! The User-Password cipher of RFC 2865 §5.2.
//!
//! This module owns hiding and revealing the User-Password attribute: the password is padded
//! with NULs to a multiple of 16 octets and each 16-octet block is XORed with
//! MD5(secret ‖ previous block), the first "previous block" being the Request Authenticator.
//! Both directions work in caller-supplied fixed-size buffers so that no clear password is ever
//! left behind in a heap allocation the caller does not control.

use md5::{Digest, Md5};

use super::error::PasswordError;

/// The longest clear password RFC 2865 §5.2 allows, and so the largest hidden value.
pub const MAX_PASSWORD_LEN: usize = 128;

/// The cipher's block size, one MD5 digest.
const BLOCK: usize = 16;

/// The keystream block for one step: MD5(secret ‖ previous ciphertext block).
fn keystream(secret: &[u8], previous: &[u8; BLOCK]) -> [u8; BLOCK] {
    Md5::new()
        .chain_update(secret)
        .chain_update(previous)
        .finalize()
        .into()
}

/// RFC 2865 §5.2: returns the clear password with trailing NUL padding removed.
///
/// `hidden` is the User-Password value, a multiple of 16 octets between 16 and 128. The clear
/// text is written into `out`, and the returned slice borrows from it; the caller owns `out`
/// and should wipe it once the password has been checked. Only trailing NULs are removed,
/// because they are the padding; NULs inside the password are kept.
pub fn unhide_password<'o>(
    hidden: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
    out: &'o mut [u8; MAX_PASSWORD_LEN],
) -> Result<&'o [u8], PasswordError> {
    if secret.is_empty() {
        return Err(PasswordError::EmptySecret);
    }
    if hidden.is_empty() || hidden.len() % BLOCK != 0 {
        return Err(PasswordError::BadHiddenLength);
    }
    let Some(clear) = out.get_mut(..hidden.len()) else {
        return Err(PasswordError::BadHiddenLength);
    };
    let mut previous = *authenticator;
    for (clear_block, hidden_block) in clear
        .chunks_exact_mut(BLOCK)
        .zip(hidden.chunks_exact(BLOCK))
    {
        let key = keystream(secret, &previous);
        for ((c, h), k) in clear_block.iter_mut().zip(hidden_block).zip(key) {
            *c = h ^ k;
        }
        // The next block is keyed by this block's ciphertext, not by its clear text.
        for (p, h) in previous.iter_mut().zip(hidden_block) {
            *p = *h;
        }
    }
    let clear: &'o [u8] = clear;
    let end = clear.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    Ok(clear.get(..end).unwrap_or_default())
}

/// Returns the number of bytes written to `out` (a multiple of 16, at least 16).
///
/// Hides `password` as RFC 2865 §5.2 describes, padding it with NULs to a whole number of
/// 16-octet blocks; an empty password becomes one block of hidden NULs. The hidden value is
/// `out[..n]` for the returned `n`. A password whose own last octets are NULs cannot be told
/// apart from padding by the receiver, as with every RADIUS implementation.
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
    out: &mut [u8; MAX_PASSWORD_LEN],
) -> Result<usize, PasswordError> {
    if secret.is_empty() {
        return Err(PasswordError::EmptySecret);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::PasswordTooLong);
    }
    let hidden_len = password.len().div_ceil(BLOCK).max(1) * BLOCK;
    let Some(hidden) = out.get_mut(..hidden_len) else {
        return Err(PasswordError::PasswordTooLong);
    };
    hidden.fill(0);
    for (h, p) in hidden.iter_mut().zip(password) {
        *h = *p;
    }
    let mut previous = *authenticator;
    for block in hidden.chunks_exact_mut(BLOCK) {
        let key = keystream(secret, &previous);
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        for (p, b) in previous.iter_mut().zip(block.iter()) {
            *p = *b;
        }
    }
    Ok(hidden_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"xyzzy5461";
    // The Request Authenticator and hidden "arctangent" of RFC 2865 §7.1.
    const AUTH: [u8; 16] = [
        0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4, 0x22,
        0x7a,
    ];
    const HIDDEN: [u8; 16] = [
        0x0d, 0xbe, 0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a, 0x0a,
        0xee,
    ];

    #[test]
    fn rfc_2865_example_password() {
        let mut out = [0u8; MAX_PASSWORD_LEN];
        assert_eq!(
            unhide_password(&HIDDEN, SECRET, &AUTH, &mut out).unwrap(),
            b"arctangent"
        );
        let n = hide_password(b"arctangent", SECRET, &AUTH, &mut out).unwrap();
        assert_eq!(&out[..n], &HIDDEN);
    }

    #[test]
    fn empty_password_is_one_hidden_block() {
        let mut out = [0xEEu8; MAX_PASSWORD_LEN];
        let n = hide_password(b"", SECRET, &AUTH, &mut out).unwrap();
        assert_eq!(n, 16);
        let hidden = out;
        let mut clear = [0u8; MAX_PASSWORD_LEN];
        assert_eq!(
            unhide_password(&hidden[..n], SECRET, &AUTH, &mut clear).unwrap(),
            b""
        );
    }

    #[test]
    fn inner_nuls_survive_and_trailing_ones_are_padding() {
        let mut hidden = [0u8; MAX_PASSWORD_LEN];
        let n = hide_password(b"a\0b\0\0", SECRET, &AUTH, &mut hidden).unwrap();
        let mut clear = [0u8; MAX_PASSWORD_LEN];
        assert_eq!(
            unhide_password(&hidden[..n], SECRET, &AUTH, &mut clear).unwrap(),
            b"a\0b"
        );
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let mut out = [0u8; MAX_PASSWORD_LEN];
        assert_eq!(
            hide_password(&[1; 129], SECRET, &AUTH, &mut out),
            Err(PasswordError::PasswordTooLong)
        );
        assert_eq!(
            hide_password(b"x", b"", &AUTH, &mut out),
            Err(PasswordError::EmptySecret)
        );
        for len in [0usize, 1, 15, 17, 31, 144, 200] {
            assert_eq!(
                unhide_password(&vec![1; len], SECRET, &AUTH, &mut out),
                Err(PasswordError::BadHiddenLength),
                "length {len}"
            );
        }
        assert_eq!(
            unhide_password(&HIDDEN, b"", &AUTH, &mut out),
            Err(PasswordError::EmptySecret)
        );
    }

    #[test]
    fn wrong_secret_does_not_reveal_the_password() {
        let mut out = [0u8; MAX_PASSWORD_LEN];
        let clear = unhide_password(&HIDDEN, b"wrong", &AUTH, &mut out).unwrap();
        assert_ne!(clear, b"arctangent");
    }
}
