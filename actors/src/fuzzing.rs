//! Entry points of the fuzz targets in `fuzz/`: each hands untrusted input to one parser
//! of this crate that has no public door of its own. Compiled only with `--cfg fuzzing`,
//! which cargo-fuzz sets, so none of it is in a shipped binary.

use std::sync::OnceLock;

use crate::store::MasterKey;

/// A token import line (`tollgate token import`).
pub fn token_csv_line(line: &str) {
    if let Ok((user, token)) = crate::cli::import::parse_line(line) {
        assert!(!user.is_empty());
        assert!(
            token.params.validate().is_ok(),
            "an accepted line has valid parameters"
        );
    }
}

/// A user import file (`tollgate user import`).
pub fn user_csv(bytes: &[u8]) {
    if let Ok(rows) = crate::cli::import::user_rows(bytes) {
        for (_, password) in rows {
            assert!(!password.is_empty() && password.len() <= 120);
        }
    }
}

/// A delivery import file (`tollgate user delivery-import`).
pub fn delivery_csv(bytes: &[u8]) {
    let _ = crate::cli::import::delivery_rows(bytes);
}

/// A token record read from a directory attribute (`tollgate$1$…`), opened with a fixed
/// master key: refused cleanly or read, never a panic.
pub fn sealed_record(value: &str) {
    let key = key();
    let _ = crate::ldap::record::decode(key, "example.com", "alice", value);
}

fn key() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("tollgate-fuzz-{}.key", std::process::id()));
        let (key, _) = MasterKey::load_or_create(&path).expect("a master key for fuzzing");
        let _ = std::fs::remove_file(&path);
        key
    })
}
