//! Fuzz target for User-Password revealing (RFC 2865 §5.2): any hidden value, secret and
//! authenticator is revealed or refused without a panic, and what hiding a revealed
//! password gives back is the hidden value again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_engine::radius::{hide_password, unhide_password, MAX_PASSWORD_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let (authenticator, rest) = data.split_at(16);
    let authenticator: [u8; 16] = authenticator.try_into().unwrap_or([0; 16]);
    let split = usize::from(rest[0]).min(rest.len() - 1);
    let (secret, hidden) = rest[1..].split_at(split.min(rest.len() - 1));
    let mut clear = [0u8; MAX_PASSWORD_LEN];
    let Ok(password) = unhide_password(hidden, secret, &authenticator, &mut clear) else {
        return;
    };
    let password = password.to_vec();
    // Trailing NULs are padding and were stripped, so hiding restores the value only when
    // the password did not end in one.
    if !password.ends_with(&[0]) && hidden.len() == password.len().div_ceil(16).max(1) * 16 {
        let mut again = [0u8; MAX_PASSWORD_LEN];
        let n = hide_password(&password, secret, &authenticator, &mut again)
            .expect("a revealed password hides again");
        assert_eq!(&again[..n], hidden);
    }
});
