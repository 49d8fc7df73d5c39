//! Users and tokens in memory, and the atomic check-and-advance of their state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use tollgate_engine::login::{LockoutPolicy, LockoutState, RejectReason};
use tollgate_engine::otp::{self, TokenParams, TokenState, Verdict, VerifyPolicy};
use zeroize::Zeroizing;

use super::journal::{Entry, Journal};
use super::{CredentialCache, Hasher};
use crate::store::{name_key, DayCodeRecord, DeliverySettings, TokenRecord, UserRecord};

/// Locks a mutex, taking over the data if a panicking holder poisoned it: every value
/// guarded here is written whole, so a poisoned one is still consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One token of a user, with its seed and replay state.
pub struct TokenEntry {
    /// Store id.
    pub id: i64,
    /// Algorithm, digits, period.
    pub params: TokenParams,
    secret: Zeroizing<Vec<u8>>,
    /// Held for the whole verify-and-advance step, so that two requests for the same user
    /// can never both accept one counter.
    state: Mutex<TokenState>,
}

impl TokenEntry {
    fn from_record(r: TokenRecord) -> Self {
        TokenEntry {
            id: r.id,
            params: r.params,
            secret: r.secret,
            state: Mutex::new(r.state),
        }
    }

    /// The current replay state.
    pub fn state(&self) -> TokenState {
        *lock(&self.state)
    }

    /// The code the token shows at `now` (for the demo and tests; never logged).
    pub fn current_code(&self, now: u64) -> String {
        let mut buf = [0u8; 8];
        let state = self.state();
        let code = otp::current_code(&self.secret, &self.params, &state, now, &mut buf);
        String::from_utf8_lossy(code).into_owned()
    }
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("id", &self.id)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A user as the login path sees it. Replaced whole when an admin changes it; the lockout
/// state and the tokens' replay state are carried over into the replacement.
#[derive(Debug)]
pub struct UserEntry {
    /// Store id.
    pub id: i64,
    /// Name as first given.
    pub name: String,
    /// Argon2id hash, shared with the credential cache to bind its entries.
    pub password_hash: Option<Arc<str>>,
    /// Disabled users are refused.
    pub disabled: bool,
    /// Failure count and lock, shared across replacements of this entry.
    lockout: Arc<Mutex<LockoutState>>,
    /// The user's tokens.
    pub tokens: Vec<Arc<TokenEntry>>,
    /// How the second factor reaches the user.
    pub delivery: DeliverySettings,
}

impl UserEntry {
    /// The failure count and lock.
    pub fn lockout(&self) -> LockoutState {
        *lock(&self.lockout)
    }

    /// Distinct passcode lengths of the user's tokens, shortest first.
    pub fn passcode_lengths(&self) -> impl Iterator<Item = u8> + '_ {
        let mut seen = [false; 11];
        self.tokens.iter().filter_map(move |t| {
            let d = usize::from(t.params.digits).min(10);
            (!std::mem::replace(&mut seen[d], true)).then_some(t.params.digits)
        })
    }
}

/// The outcome of the fast password check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The cache vouches for the password.
    Good,
    /// The user has no password here, or the password is empty.
    Bad,
    /// Only the slow Argon2 check can tell.
    NeedsSlowCheck,
}

/// The outcome of the slow password check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlowCheck {
    /// Argon2 verified it (and the cache now remembers it).
    Verified,
    /// Another login of the same user verified it while this one waited its turn.
    Remembered,
    /// Argon2 refused it, or there is nothing to check it against.
    Wrong,
}

impl SlowCheck {
    /// Whether the password is right.
    pub fn good(self) -> bool {
        self != SlowCheck::Wrong
    }
}

/// The outcome of a passcode check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PasscodeCheck {
    /// A token accepted the code; its counter moved past it.
    Accepted {
        /// The token that matched.
        token_id: i64,
    },
    /// No token accepted it.
    Rejected(RejectReason),
}

#[derive(Default)]
struct Dirty {
    tokens: HashMap<i64, TokenState>,
    lockouts: HashMap<i64, LockoutState>,
    day_codes: Vec<(i64, i64)>,
}

/// An enrolled phone: its key (to check what it signs) and where its pushes go.
#[derive(Debug)]
pub struct DeviceEntry {
    /// Device id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Name the app gave.
    pub name: String,
    /// The public key.
    pub key: tollgate_engine::push::DeviceKey,
    /// Push platform.
    pub platform: crate::store::Platform,
    /// FCM or APNs token.
    pub push_token: Option<String>,
}

/// A user's preload day code in memory.
struct DayCode {
    code: zeroize::Zeroizing<String>,
    issued_at: i64,
    expires_at: i64,
    used: bool,
}

/// The outcome of a day-code check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DayCheck {
    /// Right, and now used; a new one is due.
    Accepted {
        /// When the used code was issued.
        issued_at: i64,
    },
    /// Not the user's code.
    Wrong,
    /// The user's code, already used.
    Used,
    /// The user's code, expired.
    Expired,
    /// The user has no day code yet.
    Missing,
    /// The right code, now used, but its use could not be journaled: refused, since a
    /// crash could make it valid again.
    NotRecorded,
}

/// Runtime state changed since the last flush, to be written to the store.
#[derive(Debug, Default)]
pub struct DirtyState {
    /// Token counters and drift.
    pub tokens: Vec<(i64, TokenState)>,
    /// User failure counts and locks.
    pub lockouts: Vec<(i64, LockoutState)>,
    /// Day codes used: (user id, issued at).
    pub day_codes: Vec<(i64, i64)>,
}

/// The store id of the decoy user: store ids are positive.
const DECOY_ID: i64 = -1;

/// The embedded directory in memory.
pub struct Directory {
    by_name: DashMap<String, Arc<UserEntry>, Hasher>,
    by_id: DashMap<i64, Arc<UserEntry>, Hasher>,
    /// Write-behind set: bounded by the number of users and tokens, never by traffic.
    dirty: Mutex<Dirty>,
    /// Preload day codes by user id.
    day_codes: DashMap<i64, DayCode>,
    /// Enrolled devices by id, and by owner.
    devices: DashMap<String, Arc<DeviceEntry>>,
    user_devices: DashMap<i64, Vec<Arc<DeviceEntry>>>,
    /// Verified-credential cache.
    pub credentials: CredentialCache,
    /// Passcode windows.
    pub otp_policy: VerifyPolicy,
    /// Lockout rule.
    pub lockout_policy: LockoutPolicy,
    /// Where every accepted code and lockout change is recorded before its reply leaves.
    journal: Journal,
    /// The stand-in whose password an unknown name is checked against (see
    /// [`Directory::decoy`]); made on first use.
    decoy: std::sync::OnceLock<Arc<UserEntry>>,
    /// What the decoy's hash is made with.
    hash_params: crate::store::HashParams,
}

impl Directory {
    /// An empty directory.
    pub fn new(
        otp_policy: VerifyPolicy,
        lockout_policy: LockoutPolicy,
        cache_ttl_secs: u64,
    ) -> Self {
        Directory {
            by_name: DashMap::with_hasher(Hasher::default()),
            by_id: DashMap::with_hasher(Hasher::default()),
            dirty: Mutex::new(Dirty::default()),
            day_codes: DashMap::new(),
            devices: DashMap::new(),
            user_devices: DashMap::new(),
            credentials: CredentialCache::new(cache_ttl_secs),
            otp_policy,
            lockout_policy,
            journal: Journal::disabled(),
            hash_params: crate::store::HashParams::default(),
            decoy: std::sync::OnceLock::new(),
        }
    }

    /// A user that exists nowhere, with an Argon2id hash of a random password made like
    /// every user's: the password given for an unknown name is checked against it, so that
    /// an unknown name costs the same slow check as a known name with a wrong password and
    /// the time of a reply does not tell which names exist. The hash is made on first use
    /// (a server makes it at start, so no login pays for it).
    pub fn decoy(&self) -> Arc<UserEntry> {
        Arc::clone(self.decoy.get_or_init(|| {
            let mut random = Zeroizing::new([0u8; 32]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, random.as_mut());
            Arc::new(UserEntry {
                id: DECOY_ID,
                name: String::new(),
                password_hash: Some(Arc::from(crate::store::hash_password(
                    random.as_ref(),
                    &self.hash_params,
                ))),
                disabled: false,
                lockout: Arc::new(Mutex::new(LockoutState::default())),
                tokens: Vec::new(),
                delivery: DeliverySettings::default(),
            })
        }))
    }

    /// Whether `user` is the [`Directory::decoy`].
    pub fn is_decoy(&self, user: &UserEntry) -> bool {
        user.id == DECOY_ID
    }

    /// The same directory, with its decoy hashed like new passwords (`[passwords]`): an
    /// unknown name then costs what a known one does.
    pub fn with_hash_params(mut self, params: crate::store::HashParams) -> Self {
        self.hash_params = params;
        self
    }

    /// The same directory, recording into `journal` (a server's; tests and commands keep
    /// the disabled one).
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = journal;
        self
    }

    /// The used-code journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Finds a user by store id.
    pub fn user_by_id(&self, id: i64) -> Option<Arc<UserEntry>> {
        self.by_id.get(&id).map(|u| Arc::clone(&u))
    }

    /// Finds a user by name, without case.
    pub fn user(&self, name: &str) -> Option<Arc<UserEntry>> {
        // Most names arrive in the case they were created in; try that before allocating.
        if let Some(u) = self.by_name.get(name) {
            return Some(Arc::clone(&u));
        }
        self.by_name.get(&name_key(name)).map(|u| Arc::clone(&u))
    }

    /// Installs or replaces a user with its tokens, carrying over the runtime state of the
    /// entry it replaces: its lock and, for tokens that remain, the further of the two
    /// counters, so that reloading from the store can never make a used code valid again.
    pub fn upsert(&self, record: UserRecord, tokens: Vec<TokenRecord>) {
        let previous = self.by_id.get(&record.id).map(|u| Arc::clone(&u));
        let lockout = match &previous {
            Some(p) => Arc::clone(&p.lockout),
            None => Arc::new(Mutex::new(record.lockout)),
        };
        let tokens = tokens
            .into_iter()
            .map(|t| {
                let old = previous
                    .as_ref()
                    .and_then(|p| p.tokens.iter().find(|o| o.id == t.id));
                match old {
                    Some(old) => {
                        let entry = TokenEntry::from_record(t);
                        let mem = old.state();
                        let mut s = lock(&entry.state);
                        if mem.next_counter >= s.next_counter {
                            *s = mem;
                        }
                        drop(s);
                        Arc::new(entry)
                    }
                    None => Arc::new(TokenEntry::from_record(t)),
                }
            })
            .collect();
        let hash: Option<Arc<str>> = match (&previous, record.password_hash) {
            // Keep the same allocation when the hash did not change, so that cached
            // credentials bound to it stay valid.
            (Some(p), Some(h)) if p.password_hash.as_deref() == Some(h.as_str()) => {
                p.password_hash.clone()
            }
            (_, h) => {
                self.credentials.forget(record.id);
                h.map(Arc::from)
            }
        };
        if record.disabled {
            self.credentials.forget(record.id);
        }
        let entry = Arc::new(UserEntry {
            id: record.id,
            name: record.name,
            password_hash: hash,
            disabled: record.disabled,
            lockout,
            tokens,
            delivery: record.delivery,
        });
        if let Some(p) = &previous {
            if name_key(&p.name) != name_key(&entry.name) {
                self.by_name.remove(&name_key(&p.name));
            }
        }
        self.by_name
            .insert(name_key(&entry.name), Arc::clone(&entry));
        self.by_id.insert(entry.id, entry);
    }

    /// Replaces a user's devices with those of the store (a device whose key does not
    /// parse is skipped and logged).
    pub fn set_devices(&self, user_id: i64, records: Vec<crate::store::DeviceRecord>) {
        if let Some((_, old)) = self.user_devices.remove(&user_id) {
            for d in old {
                self.devices.remove(&d.id);
            }
        }
        let mut list = Vec::with_capacity(records.len());
        for r in records {
            match tollgate_engine::push::DeviceKey::parse(&r.key_alg, &r.public_key) {
                Ok(key) => {
                    let entry = Arc::new(DeviceEntry {
                        id: r.id,
                        user_id,
                        name: r.name,
                        key,
                        platform: r.platform,
                        push_token: r.push_token,
                    });
                    self.devices.insert(entry.id.clone(), Arc::clone(&entry));
                    list.push(entry);
                }
                Err(e) => tracing::warn!(device = %r.id, error = %e, "device skipped"),
            }
        }
        if !list.is_empty() {
            self.user_devices.insert(user_id, list);
        }
    }

    /// Users that have devices now.
    pub fn users_with_devices(&self) -> Vec<i64> {
        self.user_devices.iter().map(|e| *e.key()).collect()
    }

    /// A device by id.
    pub fn device(&self, id: &str) -> Option<Arc<DeviceEntry>> {
        self.devices.get(id).map(|d| Arc::clone(&d))
    }

    /// A user's devices.
    pub fn devices_of(&self, user_id: i64) -> Vec<Arc<DeviceEntry>> {
        self.user_devices
            .get(&user_id)
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Removes a user.
    pub fn remove(&self, id: i64) {
        self.set_devices(id, Vec::new());
        if let Some((_, u)) = self.by_id.remove(&id) {
            self.by_name.remove(&name_key(&u.name));
            self.credentials.forget(id);
        }
    }

    /// Ids of every user, for a full reload.
    pub fn user_ids(&self) -> Vec<i64> {
        self.by_id.iter().map(|e| *e.key()).collect()
    }

    /// Clears a user's failures and lock (an admin's unlock).
    pub fn unlock(&self, id: i64) {
        if let Some(u) = self.by_id.get(&id) {
            let mut l = lock(&u.lockout);
            *l = LockoutState::default();
            lock(&self.dirty).lockouts.insert(id, *l);
        }
    }

    /// The fast password check: the credential cache, or a clear refusal.
    pub fn check_password_fast(
        &self,
        user: &UserEntry,
        password: &[u8],
        now_ms: u64,
    ) -> PasswordCheck {
        let Some(hash) = &user.password_hash else {
            return PasswordCheck::Bad;
        };
        // An empty password is never a credential, whatever a hash says.
        if password.is_empty() {
            return PasswordCheck::Bad;
        }
        if self.credentials.check(user.id, hash, password, now_ms) {
            PasswordCheck::Good
        } else {
            PasswordCheck::NeedsSlowCheck
        }
    }

    /// The slow password check (Argon2id, tens of milliseconds): run it off the actors, on
    /// a blocking thread, once its turn at the CPU has come. Remembers the password on
    /// success.
    ///
    /// It asks the cache again first: when an entry expires while its user logs in many
    /// times a second, every one of those logins misses the cache and queues here, and the
    /// first to verify answers all those behind it, so that one expiry costs one Argon2
    /// check (or one per core), not one per login that came meanwhile.
    pub fn check_password_slow(&self, user: &UserEntry, password: &[u8], now_ms: u64) -> SlowCheck {
        let Some(hash) = &user.password_hash else {
            return SlowCheck::Wrong;
        };
        if password.is_empty() {
            return SlowCheck::Wrong;
        }
        if self.credentials.check(user.id, hash, password, now_ms) {
            return SlowCheck::Remembered;
        }
        if crate::store::verify_password(password, hash) {
            self.credentials.remember(user.id, hash, password, now_ms);
            SlowCheck::Verified
        } else {
            SlowCheck::Wrong
        }
    }

    /// Checks a passcode against each of the user's tokens and, on a match, advances that
    /// token's counter past it before the lock is released.
    pub fn check_passcode(&self, user: &UserEntry, code: &[u8], now: u64) -> PasscodeCheck {
        if user.tokens.is_empty() {
            return PasscodeCheck::Rejected(RejectReason::NoToken);
        }
        let mut reason = RejectReason::BadPasscode;
        for token in &user.tokens {
            if code.len() != usize::from(token.params.digits) {
                continue;
            }
            let mut state = lock(&token.state);
            match otp::verify(
                &token.secret,
                &token.params,
                &state,
                code,
                now,
                &self.otp_policy,
            ) {
                Verdict::Accepted { state: next, .. } => {
                    *state = next;
                    // The write-behind set first, the journal second: the store thread's
                    // rotation relies on that order (see `journal.rs`).
                    lock(&self.dirty).tokens.insert(token.id, next);
                    let entry = Entry::Token {
                        id: token.id,
                        state: next,
                    };
                    if let Err(e) = self.journal.record(entry) {
                        // The counter moved on in memory, so the code stays used here; it
                        // is refused because nothing would keep it used after a crash.
                        tracing::error!(error = %e, "passcode refused: its use could not be journaled");
                        return PasscodeCheck::Rejected(RejectReason::TokenWriteFailed);
                    }
                    return PasscodeCheck::Accepted { token_id: token.id };
                }
                Verdict::Rejected(otp::RejectReason::Replayed) => {
                    reason = RejectReason::ReplayedPasscode;
                }
                Verdict::Rejected(_) => {}
            }
        }
        PasscodeCheck::Rejected(reason)
    }

    /// Installs a day code read from the store, unless a newer one is already here; a code
    /// used here stays used.
    pub fn install_day_code(&self, r: DayCodeRecord) {
        let fresh = DayCode {
            code: r.code,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            used: r.used,
        };
        match self.day_codes.entry(r.user_id) {
            dashmap::Entry::Occupied(mut e) => {
                let cur = e.get_mut();
                if fresh.issued_at > cur.issued_at
                    || (fresh.issued_at == cur.issued_at && *fresh.code != *cur.code)
                {
                    *cur = fresh;
                } else if fresh.issued_at == cur.issued_at {
                    cur.used |= fresh.used;
                }
            }
            dashmap::Entry::Vacant(e) => {
                e.insert(fresh);
            }
        }
    }

    /// Checks a typed day code and, when it is right, marks it used before the shard's
    /// lock is released, so that it is accepted once.
    pub fn check_day_code(&self, user_id: i64, typed: &[u8], now: u64) -> DayCheck {
        let Some(mut code) = self.day_codes.get_mut(&user_id) else {
            return DayCheck::Missing;
        };
        if !tollgate_engine::login::code_matches(code.code.as_bytes(), typed) {
            return DayCheck::Wrong;
        }
        if code.used {
            return DayCheck::Used;
        }
        if now as i64 >= code.expires_at {
            return DayCheck::Expired;
        }
        code.used = true;
        let issued_at = code.issued_at;
        drop(code);
        lock(&self.dirty).day_codes.push((user_id, issued_at));
        if let Err(e) = self.journal.record(Entry::DayCode { user_id, issued_at }) {
            tracing::error!(error = %e, "day code refused: its use could not be journaled");
            return DayCheck::NotRecorded;
        }
        DayCheck::Accepted { issued_at }
    }

    /// When the user's current day code was issued, if they have one.
    pub fn day_code_issued_at(&self, user_id: i64) -> Option<i64> {
        self.day_codes.get(&user_id).map(|c| c.issued_at)
    }

    /// The length of the user's day code, if they have one.
    pub fn day_code_len(&self, user_id: i64) -> Option<usize> {
        self.day_codes.get(&user_id).map(|c| c.code.len())
    }

    /// Whether the user is locked at `now`.
    pub fn is_locked(&self, user: &UserEntry, now: u64) -> bool {
        lock(&user.lockout).is_locked(now)
    }

    /// Records the end of a login for the lockout rule. Returns true when this failure
    /// locked the user.
    pub fn record_result(&self, user: &UserEntry, failure: Option<RejectReason>, now: u64) -> bool {
        let mut l = lock(&user.lockout);
        let before = *l;
        let locked_now = match failure {
            None => {
                l.record_success();
                false
            }
            Some(reason) if reason.counts_towards_lockout() => {
                l.record_failure(now, &self.lockout_policy)
            }
            Some(_) => false,
        };
        if *l != before {
            let state = *l;
            lock(&self.dirty).lockouts.insert(user.id, state);
            // Written under the user's lock, so one user's records lie in the journal in
            // the order of the changes.
            let entry = Entry::Lockout {
                user_id: user.id,
                state,
            };
            if let Err(e) = self.journal.record(entry) {
                tracing::error!(error = %e, "a lockout change could not be journaled");
            }
        }
        locked_now
    }

    /// Takes the runtime state changed since the last call.
    pub fn take_dirty(&self) -> DirtyState {
        // Swapped out under the lock, converted after it: a UDP worker recording an
        // accepted code never waits for the conversion.
        let d = std::mem::take(&mut *lock(&self.dirty));
        DirtyState {
            tokens: d.tokens.into_iter().collect(),
            lockouts: d.lockouts.into_iter().collect(),
            day_codes: d.day_codes,
        }
    }

    /// Puts back state whose write failed, unless newer state was recorded meanwhile.
    pub fn restore_dirty(&self, failed: DirtyState) {
        let mut d = lock(&self.dirty);
        for (id, s) in failed.tokens {
            d.tokens.entry(id).or_insert(s);
        }
        for (id, s) in failed.lockouts {
            d.lockouts.entry(id).or_insert(s);
        }
        d.day_codes.extend(failed.day_codes);
    }
}
