//! The users of a load test and their HOTP counters, kept between runs.
//!
//! `setup` writes three files into a directory: `seeds.csv` for `tollgate token import
//! --create-users`, `users.csv` (with `--passwords`) for `tollgate user import`, and
//! `state.json`, which holds every user's seed, password and next HOTP counter. `run` reads
//! `state.json` and writes it back at the end, so that consecutive runs keep sending codes
//! the server has not seen: a code sent twice is a replay and would be refused. A `secret`
//! file with a random shared secret is written too, for the RADIUS client.
//!
//! The files hold secrets, so they are created readable by their owner only.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tollgate_engine::otp::{base32, Algorithm, TokenKind, TokenParams};

use crate::users::User;

/// The format version of `state.json`.
pub const STATE_VERSION: u32 = 1;
/// Digits of every code; matches the `6` written into `seeds.csv`.
pub const DIGITS: u8 = 6;

/// The token parameters `seeds.csv` declares: HOTP, SHA-1, six digits.
pub fn token_params() -> TokenParams {
    TokenParams {
        kind: TokenKind::Hotp,
        algorithm: Algorithm::Sha1,
        digits: DIGITS,
    }
}

/// One user in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The User-Name.
    pub name: String,
    /// The HOTP seed in base32, as in `seeds.csv`.
    pub seed: String,
    /// The directory password, when set up with `--passwords`.
    pub password: Option<String>,
    /// The counter of the next code to send.
    pub next_counter: u64,
    /// The counter of the newest code the server accepted, for replays.
    #[serde(default)]
    pub last_accepted: Option<u64>,
}

/// The whole of `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// When `setup` wrote it (RFC 3339, UTC).
    pub created_at: String,
    /// When a run last updated it.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The users, in the order of the CSV files.
    pub users: Vec<UserRecord>,
}

impl State {
    /// Whether every user has a password (needed by every mode but passcode-only).
    pub fn has_passwords(&self) -> bool {
        !self.users.is_empty() && self.users.iter().all(|u| u.password.is_some())
    }

    /// The users as a run works with them.
    pub fn to_users(&self) -> Result<Vec<User>> {
        self.users
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let seed = base32::decode(&r.seed)
                    .map_err(|e| anyhow::anyhow!("state.json: seed of {}: {e}", r.name))?;
                Ok(User {
                    index,
                    name: r.name.clone(),
                    seed,
                    password: r.password.clone(),
                    next_counter: r.next_counter,
                    last_accepted: r.last_accepted,
                    failures: 0,
                })
            })
            .collect()
    }

    /// Takes the counters of a finished run back into the records.
    pub fn update_from(&mut self, users: &[User]) {
        for u in users {
            if let Some(r) = self.users.get_mut(u.index) {
                // Counters only move forward, like the server's.
                r.next_counter = r.next_counter.max(u.next_counter);
                r.last_accepted = u.last_accepted.or(r.last_accepted);
            }
        }
        self.updated_at = Some(crate::sys::rfc3339(std::time::SystemTime::now()));
    }
}

/// The path of `state.json` in `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Reads `dir/state.json`.
pub fn load(dir: &Path) -> Result<State> {
    let path = state_path(dir);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (run `tollgate-loadtest setup --dir {}` first)",
            path.display(),
            dir.display()
        )
    })?;
    let state: State =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    if state.version != STATE_VERSION {
        bail!(
            "{} has version {}, this harness reads version {STATE_VERSION}",
            path.display(),
            state.version
        );
    }
    Ok(state)
}

/// Writes `dir/state.json` through a temporary file and a rename, so that a crash while
/// writing leaves the previous counters rather than half a file.
pub fn save(dir: &Path, state: &State) -> Result<()> {
    let path = state_path(dir);
    let tmp = dir.join("state.json.tmp");
    let text = serde_json::to_string_pretty(state)?;
    write_private(&tmp, text.as_bytes(), true)?;
    fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Creates (or with `overwrite` replaces) a file of mode 0600 with `bytes`.
pub(crate) fn write_private(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// What `setup` wrote.
#[derive(Debug, Clone)]
pub struct SetupFiles {
    /// `seeds.csv`.
    pub seeds: PathBuf,
    /// `users.csv`, with passwords.
    pub users: Option<PathBuf>,
    /// `state.json`.
    pub state: PathBuf,
    /// `secret`: a random shared secret for the RADIUS client.
    pub secret: PathBuf,
}

/// Creates `n` users named `{prefix}000001`… with random seeds (and passwords) in `dir`.
///
/// An existing `state.json` is kept unless `force` is set: replacing it would lose the
/// counters of users the server already knows.
pub fn setup(
    dir: &Path,
    n: usize,
    passwords: bool,
    prefix: &str,
    force: bool,
) -> Result<SetupFiles> {
    if n == 0 || n > 1_000_000 {
        bail!("--users must be between 1 and 1000000");
    }
    if prefix.is_empty() || prefix.contains([',', ' ', '\t', '\n', '\r', '#']) {
        bail!("--prefix must be non-empty, without commas, spaces or '#'");
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = SetupFiles {
        seeds: dir.join("seeds.csv"),
        users: passwords.then(|| dir.join("users.csv")),
        state: state_path(dir),
        secret: dir.join("secret"),
    };
    if files.state.exists() && !force {
        bail!(
            "{} exists: its users may already be loaded into a server; pass --force to replace \
             them (and load the new files into a fresh server)",
            files.state.display()
        );
    }
    let mut rng = rand::thread_rng();
    let width = n.to_string().len().max(6);
    let mut records = Vec::with_capacity(n);
    for i in 1..=n {
        let mut seed = [0u8; 20];
        rng.fill_bytes(&mut seed);
        records.push(UserRecord {
            name: format!("{prefix}{i:0width$}"),
            seed: base32::encode(&seed),
            password: passwords.then(|| Alphanumeric.sample_string(&mut rng, 16)),
            next_counter: 0,
            last_accepted: None,
        });
    }
    let mut seeds = String::with_capacity(n * 48);
    seeds.push_str("user,secret,type,digits,algorithm,counter\n");
    for r in &records {
        seeds.push_str(&format!("{},{},hotp,{DIGITS},sha1,0\n", r.name, r.seed));
    }
    write_private(&files.seeds, seeds.as_bytes(), true)?;
    if let Some(path) = &files.users {
        let mut text = String::with_capacity(n * 32);
        text.push_str("name,password\n");
        for r in &records {
            text.push_str(&format!(
                "{},{}\n",
                r.name,
                r.password.as_deref().unwrap_or("")
            ));
        }
        write_private(path, text.as_bytes(), true)?;
    }
    if !files.secret.exists() {
        let secret = Alphanumeric.sample_string(&mut rng, 32);
        write_private(&files.secret, format!("{secret}\n").as_bytes(), false)?;
    }
    let state = State {
        version: STATE_VERSION,
        created_at: crate::sys::rfc3339(std::time::SystemTime::now()),
        updated_at: None,
        users: records,
    };
    save(dir, &state)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_writes_files_a_run_can_read_and_update() {
        let dir = tempfile::tempdir().unwrap();
        let files = setup(dir.path(), 12, true, "lt", false).unwrap();
        let seeds = fs::read_to_string(&files.seeds).unwrap();
        let lines: Vec<&str> = seeds.lines().collect();
        assert_eq!(lines.len(), 13);
        assert!(lines[1].starts_with("lt000001,") && lines[1].ends_with(",hotp,6,sha1,0"));
        let users = fs::read_to_string(files.users.unwrap()).unwrap();
        assert_eq!(users.lines().count(), 13);
        let mut state = load(dir.path()).unwrap();
        assert!(state.has_passwords());
        let mut list = state.to_users().unwrap();
        assert_eq!(list[3].seed.len(), 20);
        list[3].next_counter = 9;
        list[3].last_accepted = Some(8);
        state.update_from(&list);
        save(dir.path(), &state).unwrap();
        let again = load(dir.path()).unwrap();
        assert_eq!(again.users[3].next_counter, 9);
        assert_eq!(again.users[3].last_accepted, Some(8));
        // A second setup refuses to throw the counters away.
        assert!(setup(dir.path(), 3, false, "lt", false).is_err());
        let files = setup(dir.path(), 3, false, "lt", true).unwrap();
        assert!(files.users.is_none());
        assert!(!load(dir.path()).unwrap().has_passwords());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&files.state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
