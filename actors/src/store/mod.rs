//! The embedded store: users, tokens, RADIUS clients and runtime state in SQLite.
//!
//! It owns the data directory (mode 0700): `tollgate.db`, `master.key`, and `serve.lock`,
//! which a running server holds (`serving`). Seeds and client
//! secrets are sealed with the master key before they reach the database, with the record
//! id as associated data. Admin commands write here and append to the `changes` table; a
//! running server tails that table to pick changes up without a restart. The server itself
//! writes only runtime state (token counters and drift, failure counts and locks), in
//! batches, so the store never sits on the per-packet path.

mod crypto;
mod delivery;
mod devices;
mod password;
pub mod serving;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tollgate_config::{ClientAddress, SharedSecret};
use tollgate_engine::login::{LockoutState, LoginMode};
use tollgate_engine::otp::{Algorithm, TokenKind, TokenParams, TokenState};
use zeroize::Zeroizing;

pub use crypto::MasterKey;
pub use delivery::{DayCodeRecord, DeliverySettings, IssuedCode, Method, NewMessage, OutboxRecord};
pub use devices::{DeviceRecord, Platform};
pub use password::{hash_password, verify_password, HashParams};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tollgate.db";
/// File name of the master key inside the data directory.
pub const KEY_FILE: &str = "master.key";

/// What can go wrong in the store. Operator errors (a name that exists, a bad key file)
/// come with a message meant for them; database errors are ours or the disk's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created or has unsafe permissions.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The master key file could not be read or created, or is unsafe.
    #[error("master key {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A sealed record does not open with this master key.
    #[error("cannot decrypt {0}: the master key does not match this data directory, or the record was altered")]
    Decrypt(String),
    /// The named user does not exist.
    #[error("no user named `{0}`")]
    NoSuchUser(String),
    /// The named client does not exist.
    #[error("no RADIUS client named `{0}`")]
    NoSuchClient(String),
    /// The token does not exist.
    #[error("no token with id {0}")]
    NoSuchToken(i64),
    /// A user or client of that name exists already.
    #[error("`{0}` already exists")]
    Exists(String),
    /// A value given by the operator is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The data directory holds no store (a command other than `serve` or `init` never
    /// creates one: a typo in the path would put its writes where no server reads them).
    #[error("no store in {path} ({missing} is missing): check --data-dir or data_dir; `tollgate init` or `tollgate serve` creates a store")]
    NoStore {
        /// The data directory.
        path: PathBuf,
        /// The file that is not there.
        missing: &'static str,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// A user of the embedded directory.
#[derive(Clone, Debug)]
pub struct UserRecord {
    /// Row id.
    pub id: i64,
    /// Name as first given.
    pub name: String,
    /// Argon2id PHC string; `None` when the user has no directory password here (they can
    /// log in only through passcode-only clients).
    pub password_hash: Option<String>,
    /// Disabled users are refused.
    pub disabled: bool,
    /// Consecutive failures and lock.
    pub lockout: LockoutState,
    /// How the second factor reaches the user.
    pub delivery: DeliverySettings,
}

/// A soft or hardware token and its secret seed.
pub struct TokenRecord {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Algorithm, digits, TOTP period or HOTP.
    pub params: TokenParams,
    /// The seed, opened with the master key.
    pub secret: Zeroizing<Vec<u8>>,
    /// Counter floor and drift.
    pub state: TokenState,
    /// Unix time of creation.
    pub created_at: i64,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("params", &self.params)
            .field("secret", &"<redacted>")
            .field("state", &self.state)
            .finish()
    }
}

/// A RADIUS client added at run time.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Source address or network.
    pub address: ClientAddress,
    /// Shared secret, opened with the master key.
    pub secret: SharedSecret,
    /// Login mode.
    pub mode: LoginMode,
    /// Whether requests without Message-Authenticator are dropped.
    pub require_message_authenticator: bool,
    /// Requests per second; 0 takes the server default.
    pub rate_limit: u32,
}

/// One entry of the change log that a running server tails.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A user, their password or their tokens changed (or the user was removed).
    User(i64),
    /// An administrator unlocked the user.
    Unlock(i64),
    /// The RADIUS client list changed.
    Clients,
    /// Many records changed at once (a bulk import): reload everything.
    All,
    /// Day codes were issued at this time (Unix milliseconds) or later: load them.
    DayCodes(i64),
}

/// A token to create.
pub struct NewToken {
    /// Parameters.
    pub params: TokenParams,
    /// The seed.
    pub secret: Zeroizing<Vec<u8>>,
    /// Initial HOTP counter (ignored for TOTP).
    pub counter: u64,
}

/// A client to create.
pub struct NewClient {
    /// Unique name.
    pub name: String,
    /// Source address or network.
    pub address: ClientAddress,
    /// Shared secret.
    pub secret: SharedSecret,
    /// Login mode.
    pub mode: LoginMode,
    /// Whether Message-Authenticator is required.
    pub require_message_authenticator: bool,
    /// Requests per second; 0 takes the server default.
    pub rate_limit: u32,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("params", &self.params)
            .field("secret", &"<redacted>")
            .field("counter", &self.counter)
            .finish()
    }
}

/// Counts of a bulk import.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Tokens created.
    pub tokens: u64,
    /// Users created because they did not exist.
    pub users_created: u64,
}

/// The embedded store. One per process; not shared between threads (SQLite connections are
/// not `Sync`): the server keeps one in its store task and admin commands open their own.
pub struct Store {
    conn: Connection,
    key: MasterKey,
    dir: PathBuf,
    /// What new password hashes are made with.
    hash_params: HashParams,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The lookup key of a user name: names are matched without case.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    disabled INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    digits INTEGER NOT NULL,
    period INTEGER NOT NULL,
    secret BLOB NOT NULL,
    next_counter INTEGER NOT NULL,
    drift INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(user_id);
CREATE TABLE IF NOT EXISTS clients (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    secret BLOB NOT NULL,
    mode TEXT NOT NULL,
    require_ma INTEGER NOT NULL,
    rate_limit INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id INTEGER NOT NULL,
    at INTEGER NOT NULL
);
";

const KEY_CHECK_AAD: &str = "meta:key-check";
const KEY_CHECK_PLAIN: &[u8] = b"tollgate master key check";

fn token_aad(id: i64) -> String {
    format!("token:{id}")
}

fn client_aad(id: i64) -> String {
    format!("client:{id}")
}

impl Store {
    /// Opens (creating if needed) the store in `dir`: the directory with mode 0700, the
    /// master key with mode 0600, and the schema. Fails if the key does not match the data.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let dir_err = |reason: String| StoreError::DataDir {
            path: dir.to_owned(),
            reason,
        };
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| dir_err(e.to_string()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| dir_err(e.to_string()))?;
        }
        if !dir.is_dir() {
            return Err(dir_err("is not a directory".to_owned()));
        }
        let (key, _created) = MasterKey::load_or_create(&dir.join(KEY_FILE))?;
        let conn = Connection::open(dir.join(DB_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The write that fills the WAL to this many pages copies them into the database and
        // syncs it on the writing thread: 1,000 pages (SQLite's default) took the store
        // thread a millisecond of kernel time that no UDP worker on its core could preempt.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(delivery::SCHEMA)?;
        conn.execute_batch(devices::SCHEMA)?;
        let store = Store {
            conn,
            key,
            dir: dir.to_owned(),
            hash_params: HashParams::default(),
        };
        store.check_key()?;
        Ok(store)
    }

    /// Opens the store that `dir` already holds, and refuses when it holds none: what every
    /// command but `serve` and `init` uses.
    pub fn open_existing(dir: &Path) -> Result<Store, StoreError> {
        for missing in [DB_FILE, KEY_FILE] {
            if !dir.join(missing).is_file() {
                return Err(StoreError::NoStore {
                    path: dir.to_owned(),
                    missing,
                });
            }
        }
        Store::open(dir)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes new password hashes with `params` (`[passwords]`) instead of the defaults.
    pub fn set_hash_params(&mut self, params: HashParams) {
        self.hash_params = params;
    }

    /// What new password hashes are made with.
    pub fn hash_params(&self) -> HashParams {
        self.hash_params
    }

    /// A copy of the master key, for records sealed outside the store (token records kept
    /// in an LDAP directory).
    pub fn master_key(&self) -> Result<MasterKey, StoreError> {
        MasterKey::load_or_create(&self.dir.join(KEY_FILE)).map(|(key, _)| key)
    }

    fn check_key(&self) -> Result<(), StoreError> {
        let existing: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match existing {
            Some(sealed) => {
                self.key.open(KEY_CHECK_AAD, &sealed)?;
            }
            None => {
                let sealed = self.key.seal(KEY_CHECK_AAD, KEY_CHECK_PLAIN);
                self.conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?1)",
                    params![sealed],
                )?;
            }
        }
        Ok(())
    }

    fn log_change(conn: &Connection, change: Change) -> Result<(), StoreError> {
        let (kind, id) = match change {
            Change::User(id) => ("user", id),
            Change::Unlock(id) => ("unlock", id),
            Change::Clients => ("clients", 0),
            Change::All => ("all", 0),
            Change::DayCodes(at) => ("daycodes", at),
        };
        conn.execute(
            "INSERT INTO changes (kind, id, at) VALUES (?1, ?2, ?3)",
            params![kind, id, now_unix()],
        )?;
        // The log only has to outlive the server's poll interval; a day is generous.
        conn.execute(
            "DELETE FROM changes WHERE at < ?1",
            params![now_unix() - 86_400],
        )?;
        Ok(())
    }

    /// The sequence number of the newest change, 0 when there is none.
    pub fn last_change(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                r.get(0)
            })?)
    }

    /// Changes after `seq`, oldest first, with their sequence numbers.
    pub fn changes_since(&self, seq: i64) -> Result<Vec<(i64, Change)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, kind, id FROM changes WHERE seq > ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, id) = row?;
            let change = match kind.as_str() {
                "user" => Change::User(id),
                "unlock" => Change::Unlock(id),
                "clients" => Change::Clients,
                "daycodes" => Change::DayCodes(id),
                _ => Change::All,
            };
            out.push((seq, change));
        }
        Ok(out)
    }

    // ----- users -----

    /// Adds a user, with an Argon2id hash of `password` when given.
    pub fn add_user(
        &mut self,
        name: &str,
        password: Option<&[u8]>,
    ) -> Result<UserRecord, StoreError> {
        validate_user_name(name)?;
        if let Some(p) = password {
            validate_password(p)?;
        }
        let hash = password.map(|p| hash_password(p, &self.hash_params));
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO users (name, name_key, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name_key) DO NOTHING",
            params![name, name_key(name), hash, now_unix()],
        )?;
        if inserted == 0 {
            return Err(StoreError::Exists(name.to_owned()));
        }
        let id = tx.last_insert_rowid();
        Store::log_change(&tx, Change::User(id))?;
        tx.commit()?;
        Ok(UserRecord {
            id,
            name: name.to_owned(),
            password_hash: hash,
            disabled: false,
            lockout: LockoutState::default(),
            delivery: DeliverySettings::default(),
        })
    }

    fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
        let locked_until: Option<i64> = r.get(5)?;
        Ok(UserRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            password_hash: r.get(2)?,
            disabled: r.get::<_, i64>(3)? != 0,
            lockout: LockoutState {
                failures: r.get::<_, i64>(4)?.clamp(0, u32::MAX as i64) as u32,
                // i64::MAX stands for u64::MAX, "until an admin unlocks".
                locked_until: locked_until.map(|t| {
                    if t == i64::MAX {
                        u64::MAX
                    } else {
                        t.max(0) as u64
                    }
                }),
            },
            delivery: DeliverySettings {
                method: r
                    .get::<_, Option<String>>(6)?
                    .and_then(|m| Method::parse(&m))
                    .unwrap_or_default(),
                mobile: r.get(7)?,
                email: r.get(8)?,
            },
        })
    }

    const USER_COLUMNS: &'static str = "users.id, name, password_hash, disabled, failures, locked_until, d.method, d.mobile, d.email FROM users LEFT JOIN user_delivery d ON d.user_id = users.id";

    /// Adds many users with already-hashed passwords in one transaction; a name that exists
    /// fails the whole import.
    pub fn import_users(&mut self, users: &[(String, Option<String>)]) -> Result<u64, StoreError> {
        for (name, _) in users {
            validate_user_name(name)?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut add = tx.prepare_cached(
                "INSERT INTO users (name, name_key, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name_key) DO NOTHING",
            )?;
            let now = now_unix();
            for (name, hash) in users {
                if add.execute(params![name, name_key(name), hash, now])? == 0 {
                    return Err(StoreError::Exists(name.clone()));
                }
            }
        }
        Store::log_change(&tx, Change::All)?;
        tx.commit()?;
        Ok(users.len() as u64)
    }

    /// Finds a user by name (without case).
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {} WHERE name_key = ?1", Self::USER_COLUMNS);
        Ok(self
            .conn
            .query_row(&sql, params![name_key(name)], Store::row_to_user)
            .optional()?)
    }

    /// Finds a user by id.
    pub fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {} WHERE users.id = ?1", Self::USER_COLUMNS);
        Ok(self
            .conn
            .query_row(&sql, params![id], Store::row_to_user)
            .optional()?)
    }

    fn require_user(&self, name: &str) -> Result<UserRecord, StoreError> {
        self.user(name)?
            .ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {} ORDER BY name_key", Self::USER_COLUMNS);
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], Store::row_to_user)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets or replaces a user's password; the server drops its cached credential.
    pub fn set_password(&mut self, name: &str, password: &[u8]) -> Result<(), StoreError> {
        validate_password(password)?;
        let user = self.require_user(name)?;
        let hash = hash_password(password, &self.hash_params);
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE users SET password_hash = ?1 WHERE id = ?2",
            params![hash, user.id],
        )?;
        Store::log_change(&tx, Change::User(user.id))?;
        tx.commit()?;
        Ok(())
    }

    /// Enables or disables a user.
    pub fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<(), StoreError> {
        let user = self.require_user(name)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE users SET disabled = ?1 WHERE id = ?2",
            params![disabled as i64, user.id],
        )?;
        Store::log_change(&tx, Change::User(user.id))?;
        tx.commit()?;
        Ok(())
    }

    /// Clears a user's failures and lock.
    pub fn unlock(&mut self, name: &str) -> Result<(), StoreError> {
        let user = self.require_user(name)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE users SET failures = 0, locked_until = NULL WHERE id = ?1",
            params![user.id],
        )?;
        Store::log_change(&tx, Change::Unlock(user.id))?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a user and their tokens.
    pub fn remove_user(&mut self, name: &str) -> Result<(), StoreError> {
        let user = self.require_user(name)?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM tokens WHERE user_id = ?1", params![user.id])?;
        tx.execute("DELETE FROM users WHERE id = ?1", params![user.id])?;
        Store::log_change(&tx, Change::User(user.id))?;
        tx.commit()?;
        Ok(())
    }

    // ----- tokens -----

    /// Adds a token to a user.
    pub fn add_token(
        &mut self,
        user_name: &str,
        token: NewToken,
    ) -> Result<TokenRecord, StoreError> {
        token
            .params
            .validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        if token.secret.len() < 10 {
            return Err(StoreError::Invalid(
                "the secret must be at least 80 bits (10 bytes, 16 base32 characters)".to_owned(),
            ));
        }
        let user = self.require_user(user_name)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = Store::insert_token(&tx, &self.key, user.id, &token)?;
        Store::log_change(&tx, Change::User(user.id))?;
        tx.commit()?;
        Ok(TokenRecord {
            id,
            user_id: user.id,
            params: token.params,
            state: initial_state(&token),
            secret: token.secret,
            created_at: now_unix(),
        })
    }

    fn insert_token(
        tx: &Connection,
        key: &MasterKey,
        user_id: i64,
        token: &NewToken,
    ) -> Result<i64, StoreError> {
        // The id is taken inside an immediate transaction so that it can be sealed into the
        // ciphertext as associated data before the row is written.
        let id: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM tokens", [], |r| {
            r.get(0)
        })?;
        let sealed = key.seal(&token_aad(id), &token.secret);
        let (kind, period) = match token.params.kind {
            TokenKind::Totp { period, .. } => ("totp", i64::from(period)),
            TokenKind::Hotp => ("hotp", 0),
        };
        let state = initial_state(token);
        tx.prepare_cached(
            "INSERT INTO tokens (id, user_id, kind, algorithm, digits, period, secret, next_counter, drift, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
        )?
        .execute(params![
            id,
            user_id,
            kind,
            token.params.algorithm.as_str(),
            i64::from(token.params.digits),
            period,
            sealed,
            state.next_counter as i64,
            now_unix()
        ])?;
        Ok(id)
    }

    fn row_to_token(&self, r: &rusqlite::Row<'_>) -> Result<TokenRecord, StoreError> {
        let id: i64 = r.get(0)?;
        let kind: String = r.get(2)?;
        let algorithm: String = r.get(3)?;
        let digits: i64 = r.get(4)?;
        let period: i64 = r.get(5)?;
        let sealed: Vec<u8> = r.get(6)?;
        let params = TokenParams {
            kind: if kind == "hotp" {
                TokenKind::Hotp
            } else {
                TokenKind::Totp {
                    period: period.clamp(1, u32::MAX as i64) as u32,
                    t0: 0,
                }
            },
            algorithm: Algorithm::parse(&algorithm).unwrap_or(Algorithm::Sha1),
            digits: digits.clamp(0, 255) as u8,
        };
        Ok(TokenRecord {
            id,
            user_id: r.get(1)?,
            params,
            secret: self.key.open(&token_aad(id), &sealed)?,
            state: TokenState {
                next_counter: r.get::<_, i64>(7)?.max(0) as u64,
                drift: r.get(8)?,
            },
            created_at: r.get(9)?,
        })
    }

    const TOKEN_COLUMNS: &'static str =
        "id, user_id, kind, algorithm, digits, period, secret, next_counter, drift, created_at";

    /// The tokens of one user, or of everyone when `user` is `None`, by id.
    pub fn tokens(&self, user: Option<i64>) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = match user {
            Some(_) => format!(
                "SELECT {} FROM tokens WHERE user_id = ?1 ORDER BY id",
                Self::TOKEN_COLUMNS
            ),
            None => format!("SELECT {} FROM tokens ORDER BY id", Self::TOKEN_COLUMNS),
        };
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = match user {
            Some(u) => stmt.query(params![u])?,
            None => stmt.query([])?,
        };
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(self.row_to_token(row)?);
        }
        Ok(out)
    }

    /// Removes a token.
    pub fn remove_token(&mut self, id: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let user_id: Option<i64> = tx
            .query_row(
                "SELECT user_id FROM tokens WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        let user_id = user_id.ok_or(StoreError::NoSuchToken(id))?;
        tx.execute("DELETE FROM tokens WHERE id = ?1", params![id])?;
        Store::log_change(&tx, Change::User(user_id))?;
        tx.commit()?;
        Ok(())
    }

    /// One token by id.
    pub fn token(&self, id: i64) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {} FROM tokens WHERE id = ?1", Self::TOKEN_COLUMNS);
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params![id])?;
        match rows.next()? {
            Some(row) => Ok(Some(self.row_to_token(row)?)),
            None => Ok(None),
        }
    }

    /// Writes a token's state after a resynchronisation. The counter never moves back.
    pub fn resync_token(&mut self, id: i64, state: TokenState) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let user_id: i64 = tx
            .query_row(
                "SELECT user_id FROM tokens WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(StoreError::NoSuchToken(id))?;
        tx.execute(
            "UPDATE tokens SET next_counter = MAX(next_counter, ?1), drift = ?2 WHERE id = ?3",
            params![state.next_counter as i64, state.drift, id],
        )?;
        Store::log_change(&tx, Change::User(user_id))?;
        tx.commit()?;
        Ok(())
    }

    /// Adds many tokens in one transaction; users that do not exist are created without a
    /// password when `create_users` is set, and refused otherwise.
    pub fn import_tokens<I>(
        &mut self,
        rows: I,
        create_users: bool,
    ) -> Result<ImportReport, StoreError>
    where
        I: IntoIterator<Item = Result<(String, NewToken), StoreError>>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut report = ImportReport::default();
        let mut next_id: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM tokens", [], |r| {
                r.get(0)
            })?;
        let now = now_unix();
        {
            let mut find_user = tx.prepare_cached("SELECT id FROM users WHERE name_key = ?1")?;
            let mut add_user = tx.prepare_cached(
                "INSERT INTO users (name, name_key, created_at) VALUES (?1, ?2, ?3)",
            )?;
            let mut add_token = tx.prepare_cached(
                "INSERT INTO tokens (id, user_id, kind, algorithm, digits, period, secret, next_counter, drift, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
            )?;
            for row in rows {
                let (user, token) = row?;
                token
                    .params
                    .validate()
                    .map_err(|e| StoreError::Invalid(format!("user {user}: {e}")))?;
                let key = name_key(&user);
                let user_id: Option<i64> =
                    find_user.query_row(params![key], |r| r.get(0)).optional()?;
                let user_id = match user_id {
                    Some(id) => id,
                    None if create_users => {
                        validate_user_name(&user)?;
                        add_user.execute(params![user, key, now])?;
                        report.users_created += 1;
                        tx.last_insert_rowid()
                    }
                    None => return Err(StoreError::NoSuchUser(user)),
                };
                let id = next_id;
                next_id += 1;
                let sealed = self.key.seal(&token_aad(id), &token.secret);
                let (kind, period) = match token.params.kind {
                    TokenKind::Totp { period, .. } => ("totp", i64::from(period)),
                    TokenKind::Hotp => ("hotp", 0),
                };
                add_token.execute(params![
                    id,
                    user_id,
                    kind,
                    token.params.algorithm.as_str(),
                    i64::from(token.params.digits),
                    period,
                    sealed,
                    initial_state(&token).next_counter as i64,
                    now
                ])?;
                report.tokens += 1;
            }
        }
        Store::log_change(&tx, Change::All)?;
        tx.commit()?;
        Ok(report)
    }

    // ----- clients -----

    /// Adds a RADIUS client.
    pub fn add_client(&mut self, client: NewClient) -> Result<ClientRecord, StoreError> {
        if client.name.is_empty()
            || client.name.len() > 64
            || !client.name.chars().all(tollgate_config::valid_name_char)
        {
            return Err(StoreError::Invalid(
                "a client name is 1 to 64 letters, digits, '-', '_' or '.'".to_owned(),
            ));
        }
        if client.secret.is_empty() {
            return Err(StoreError::Invalid(
                "the shared secret must not be empty".to_owned(),
            ));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT id FROM clients WHERE name = ?1",
                params![client.name],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Err(StoreError::Exists(client.name));
        }
        let id: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM clients", [], |r| {
            r.get(0)
        })?;
        let sealed = self.key.seal(&client_aad(id), client.secret.expose());
        tx.execute(
            "INSERT INTO clients (id, name, address, secret, mode, require_ma, rate_limit, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                client.name,
                client.address.to_string(),
                sealed,
                client.mode.as_str(),
                client.require_message_authenticator as i64,
                i64::from(client.rate_limit),
                now_unix()
            ],
        )?;
        Store::log_change(&tx, Change::Clients)?;
        tx.commit()?;
        Ok(ClientRecord {
            id,
            name: client.name,
            address: client.address,
            secret: client.secret,
            mode: client.mode,
            require_message_authenticator: client.require_message_authenticator,
            rate_limit: client.rate_limit,
        })
    }

    /// Every client added at run time, by name.
    pub fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, address, secret, mode, require_ma, rate_limit FROM clients ORDER BY name",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let name: String = r.get(1)?;
            let address: String = r.get(2)?;
            let sealed: Vec<u8> = r.get(3)?;
            let mode: String = r.get(4)?;
            let secret = self.key.open(&client_aad(id), &sealed)?;
            out.push(ClientRecord {
                id,
                address: address
                    .parse()
                    .map_err(|e: String| StoreError::Invalid(format!("client {name}: {e}")))?,
                secret: SharedSecret::new(secret.to_vec()),
                mode: mode
                    .parse()
                    .map_err(|e| StoreError::Invalid(format!("client {name}: {e}")))?,
                require_message_authenticator: r.get::<_, i64>(5)? != 0,
                rate_limit: r.get::<_, i64>(6)?.clamp(0, u32::MAX as i64) as u32,
                name,
            });
        }
        Ok(out)
    }

    /// Removes a client.
    pub fn remove_client(&mut self, name: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM clients WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(StoreError::NoSuchClient(name.to_owned()));
        }
        Store::log_change(&tx, Change::Clients)?;
        tx.commit()?;
        Ok(())
    }

    // ----- runtime state written by the server -----

    /// Persists token counters and drift, and user lockouts, in one transaction.
    pub fn save_runtime(
        &mut self,
        tokens: &[(i64, TokenState)],
        lockouts: &[(i64, LockoutState)],
    ) -> Result<(), StoreError> {
        if tokens.is_empty() && lockouts.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            // The counter only ever moves forward, even if an admin command rewrote the row
            // meanwhile: MAX keeps a replayed code from becoming valid again.
            let mut t = tx.prepare_cached(
                "UPDATE tokens SET next_counter = MAX(next_counter, ?1), drift = ?2 WHERE id = ?3",
            )?;
            for (id, state) in tokens {
                t.execute(params![state.next_counter as i64, state.drift, id])?;
            }
            let mut u = tx.prepare_cached(
                "UPDATE users SET failures = ?1, locked_until = ?2 WHERE id = ?3",
            )?;
            for (id, lock) in lockouts {
                u.execute(params![
                    i64::from(lock.failures),
                    lock.locked_until.map(|t| t.min(i64::MAX as u64) as i64),
                    id
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// WAL pages that trigger a checkpoint (see [`Store::open`]).
const WAL_CHECKPOINT_PAGES: i64 = 100;

fn initial_state(token: &NewToken) -> TokenState {
    match token.params.kind {
        TokenKind::Hotp => TokenState {
            next_counter: token.counter,
            drift: 0,
        },
        TokenKind::Totp { .. } => TokenState::default(),
    }
}

fn validate_user_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "a user name is 1 to 253 bytes with no spaces or control characters".to_owned(),
        ))
    }
}

fn validate_password(password: &[u8]) -> Result<(), StoreError> {
    // RFC 2865 carries at most 128 octets of User-Password, and the passcode shares them in
    // append mode; an empty password would let anyone with the passcode in.
    if password.is_empty() || password.len() > 120 {
        return Err(StoreError::Invalid(
            "a password is 1 to 120 bytes".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
