//! The store thread: it writes the server's runtime state to SQLite and applies the
//! changes that admin commands make, a few times a second.
//!
//! SQLite calls block, so they run on this one dedicated thread and never on the async
//! runtime. Runtime state (token counters, lockouts) reaches the store at most one
//! interval after it changed, and is written a last time at shutdown.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ractor::ActorRef;

use crate::radius::{ClientSettings, RadiusSupervisorMsg};
use crate::state::{Directory, DirtyState};
use crate::store::{Change, Store, StoreError};

/// What the store thread applies changes to.
pub struct SyncTargets {
    /// The directory in memory.
    pub directory: Arc<Directory>,
    /// Clients declared in the configuration file.
    pub clients_from_config: Vec<Arc<ClientSettings>>,
    /// Rate limit for clients that set none.
    pub default_rate: u32,
    /// Where client list changes go.
    pub supervisor: ActorRef<RadiusSupervisorMsg>,
}

/// Handle of the store thread.
pub struct StoreSync {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl StoreSync {
    /// Starts the thread; it polls the change log every `interval`, after `start_seq`.
    pub fn spawn(
        store: Store,
        ctx: SyncTargets,
        start_seq: i64,
        interval: Duration,
    ) -> std::io::Result<StoreSync> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tollgate-store".to_owned())
            .spawn(move || {
                crate::sched::background();
                let mut store = store;
                let mut seq = start_seq;
                loop {
                    flush(&mut store, &ctx.directory, Some(PAUSE));
                    match store.changes_since(seq) {
                        Ok(changes) => {
                            for (s, change) in changes {
                                seq = s;
                                if let Err(e) = apply(&store, &ctx, change) {
                                    tracing::error!(error = %e, "cannot apply a change from the store");
                                }
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "cannot read the change log"),
                    }
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            if flush(&mut store, &ctx.directory, None) {
                                // Everything is in SQLite: a restart has nothing to replay.
                                if let Err(e) = ctx.directory.journal().close_clean() {
                                    tracing::error!(error = %e, "cannot remove the used-code journal");
                                }
                            }
                            break;
                        }
                    }
                }
            })?;
        Ok(StoreSync {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread after a last flush, and waits for it.
    pub fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StoreSync {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Rows written per transaction: about a hundred microseconds of SQLite work. The kernel
/// lets a thread it picks run until it sleeps or the next tick, so one transaction of a
/// thousand rows held the core a UDP worker needed for a whole millisecond (seen on the
/// 2-core development machine, every 200 ms, at 95,000 requests/s); a short pause after each
/// chunk hands the core back.
const ROWS_PER_WRITE: usize = 128;

/// The pause between two chunks of one flush (none at shutdown).
const PAUSE: Duration = Duration::from_micros(200);

/// Writes the runtime state changed since the last flush; returns whether all of it was
/// written. The journal is rotated first, and the segments this flush covers are deleted
/// once it has committed (see `state/journal.rs` for why the order loses nothing).
fn flush(store: &mut Store, directory: &Directory, pause: Option<Duration>) -> bool {
    let journal = directory.journal();
    let covered = match journal.rotate() {
        Ok(generation) => generation,
        Err(e) => {
            // The segment in service stays in service; it is retired by a later flush.
            tracing::error!(error = %e, "cannot start a new used-code journal segment");
            metrics::counter!(crate::metrics::JOURNAL_ERRORS_TOTAL).increment(1);
            None
        }
    };
    let DirtyState {
        mut tokens,
        mut lockouts,
        mut day_codes,
    } = directory.take_dirty();
    // In id order, each chunk updates rows that sit together in the tables' B-trees, so the
    // chunks of one flush write about the pages one transaction would, not each of them
    // most of the table.
    tokens.sort_unstable_by_key(|(id, _)| *id);
    lockouts.sort_unstable_by_key(|(id, _)| *id);
    let mut first = true;
    while !tokens.is_empty() || !lockouts.is_empty() {
        if let (Some(pause), false) = (pause, first) {
            std::thread::sleep(pause);
        }
        first = false;
        let l = lockouts.len().min(ROWS_PER_WRITE);
        let t = tokens.len().min(ROWS_PER_WRITE - l);
        let lock_chunk = lockouts.split_off(lockouts.len() - l);
        let token_chunk = tokens.split_off(tokens.len() - t);
        if let Err(e) = store.save_runtime(&token_chunk, &lock_chunk) {
            // Keep what is not written yet for the next round rather than lose a counter.
            tracing::error!(error = %e, "cannot write runtime state; will retry");
            metrics::counter!(crate::metrics::STORE_ERRORS_TOTAL).increment(1);
            tokens.extend(token_chunk);
            lockouts.extend(lock_chunk);
            directory.restore_dirty(DirtyState {
                tokens,
                lockouts,
                day_codes,
            });
            return false;
        }
    }
    // Day codes used: the replacement task marks them too, but only the store thread's
    // write is ordered with the journal's rotation.
    while let Some(&(user_id, issued_at)) = day_codes.last() {
        if let Err(e) = store.day_code_used(user_id, issued_at, crate::unix_now() as i64) {
            tracing::error!(error = %e, "cannot mark a day code used; will retry");
            metrics::counter!(crate::metrics::STORE_ERRORS_TOTAL).increment(1);
            directory.restore_dirty(DirtyState {
                day_codes,
                ..DirtyState::default()
            });
            return false;
        }
        day_codes.pop();
    }
    if let Some(generation) = covered {
        if let Err(e) = journal.retire(generation) {
            tracing::error!(error = %e, "cannot remove a used-code journal segment");
        }
    }
    true
}

/// Applies what a crash left in the used-code journal of the store's data directory, then
/// removes it: every token counter and lockout it recorded (only ever moving a counter
/// forward), every day code it marked used, and, when a segment was written in an earlier
/// boot of the machine (power loss or a kernel crash, which may have lost its last records),
/// the TOTP fence on every TOTP token. Returns what it read.
pub fn recover_journal(
    store: &mut Store,
    policy: &tollgate_engine::otp::VerifyPolicy,
    now: u64,
) -> Result<crate::state::journal::Leftover, crate::server::ServerError> {
    use crate::state::journal;
    let dir = store.dir().to_owned();
    let left = journal::read_leftover(&dir)?;
    if left.segments == 0 {
        return Ok(left);
    }
    store.save_runtime(&left.tokens, &left.lockouts)?;
    for &(user_id, issued_at) in &left.day_codes {
        store.day_code_used(user_id, issued_at, now as i64)?;
    }
    let mut fenced = 0;
    if left.other_boot {
        let moved: Vec<_> = store
            .tokens(None)?
            .into_iter()
            .filter_map(|t| {
                let next = tollgate_engine::otp::fence(&t.params, &t.state, now, policy);
                (next != t.state).then_some((t.id, next))
            })
            .collect();
        fenced = moved.len();
        store.save_runtime(&moved, &[])?;
    }
    journal::remove_segments(&dir)?;
    tracing::warn!(
        segments = left.segments,
        records = left.records,
        torn = left.skipped,
        tokens = left.tokens.len(),
        lockouts = left.lockouts.len(),
        day_codes = left.day_codes.len(),
        totp_fenced = fenced,
        "the last run did not stop cleanly; its used-code journal was applied"
    );
    Ok(left)
}

fn apply(store: &Store, ctx: &SyncTargets, change: Change) -> Result<(), StoreError> {
    let directory = &ctx.directory;
    match change {
        Change::User(id) => reload_user(store, directory, id)?,
        Change::Unlock(id) => {
            reload_user(store, directory, id)?;
            directory.unlock(id);
        }
        Change::Clients => {
            let clients = all_clients(&ctx.clients_from_config, store, ctx.default_rate)?;
            let _ = ctx
                .supervisor
                .cast(RadiusSupervisorMsg::SetClients(clients));
        }
        Change::DayCodes(since) => {
            for code in store.day_codes_since(since)? {
                directory.install_day_code(code);
            }
        }
        Change::All => {
            load_directory(store, directory)?;
            let clients = all_clients(&ctx.clients_from_config, store, ctx.default_rate)?;
            let _ = ctx
                .supervisor
                .cast(RadiusSupervisorMsg::SetClients(clients));
        }
    }
    Ok(())
}

fn reload_user(store: &Store, directory: &Directory, id: i64) -> Result<(), StoreError> {
    match store.user_by_id(id)? {
        Some(user) => {
            let tokens = store.tokens(Some(id))?;
            directory.upsert(user, tokens);
            directory.set_devices(id, store.devices(Some(id))?);
        }
        None => directory.remove(id),
    }
    metrics::gauge!(crate::metrics::USERS_LOADED).set(directory.len() as f64);
    Ok(())
}

/// Loads every user and token of the store into the directory, removing users that are
/// gone and keeping the runtime state of those that remain.
pub fn load_directory(store: &Store, directory: &Directory) -> Result<(), StoreError> {
    let users = store.users()?;
    let mut tokens: HashMap<i64, Vec<_>> = HashMap::new();
    for t in store.tokens(None)? {
        tokens.entry(t.user_id).or_default().push(t);
    }
    let present: std::collections::HashSet<i64> = users.iter().map(|u| u.id).collect();
    for id in directory.user_ids() {
        if !present.contains(&id) {
            directory.remove(id);
        }
    }
    for user in users {
        let t = tokens.remove(&user.id).unwrap_or_default();
        directory.upsert(user, t);
    }
    for code in store.day_codes_since(0)? {
        directory.install_day_code(code);
    }
    let mut devices: HashMap<i64, Vec<_>> = HashMap::new();
    for d in store.devices(None)? {
        devices.entry(d.user_id).or_default().push(d);
    }
    for id in directory.users_with_devices() {
        if !devices.contains_key(&id) {
            directory.set_devices(id, Vec::new());
        }
    }
    for (id, list) in devices {
        directory.set_devices(id, list);
    }
    metrics::gauge!(crate::metrics::USERS_LOADED).set(directory.len() as f64);
    Ok(())
}

/// The clients of the configuration file followed by those of the store; a store client
/// with the name of a configured one is ignored with a warning.
pub fn all_clients(
    from_config: &[Arc<ClientSettings>],
    store: &Store,
    default_rate: u32,
) -> Result<Vec<Arc<ClientSettings>>, StoreError> {
    let mut out: Vec<Arc<ClientSettings>> = from_config.to_vec();
    for c in store.clients()? {
        if out.iter().any(|o| *o.name == *c.name) {
            tracing::warn!(client = %c.name, "a client of that name is in the configuration file; the store's is ignored");
            continue;
        }
        out.push(Arc::new(ClientSettings {
            name: Arc::from(c.name.as_str()),
            address: c.address,
            mac: tollgate_engine::radius::MacKey::new(c.secret.expose()),
            secret: c.secret,
            mode: c.mode,
            require_message_authenticator: c.require_message_authenticator,
            allow_unsigned_proxy_state: false,
            rate_limit: if c.rate_limit == 0 {
                default_rate
            } else {
                c.rate_limit
            },
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_engine::login::{LockoutPolicy, LockoutState};
    use tollgate_engine::otp::{Algorithm, TokenKind, TokenParams, TokenState, VerifyPolicy};
    use zeroize::Zeroizing;

    #[test]
    fn a_large_flush_is_written_in_chunks_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let directory = Directory::new(VerifyPolicy::default(), LockoutPolicy::default(), 600);
        // More rows than three chunks, tokens and lockouts mixed.
        let mut tokens = Vec::new();
        let mut lockouts = Vec::new();
        for i in 0..(3 * ROWS_PER_WRITE + 5) {
            let user = store.add_user(&format!("user{i}"), None).unwrap();
            let token = store
                .add_token(
                    &format!("user{i}"),
                    crate::store::NewToken {
                        params: TokenParams {
                            kind: TokenKind::Hotp,
                            algorithm: Algorithm::Sha1,
                            digits: 6,
                        },
                        secret: Zeroizing::new(b"12345678901234567890".to_vec()),
                        counter: 0,
                    },
                )
                .unwrap();
            tokens.push((
                token.id,
                TokenState {
                    next_counter: 10 + i as u64,
                    drift: 0,
                },
            ));
            if i % 7 == 0 {
                lockouts.push((
                    user.id,
                    LockoutState {
                        failures: 3,
                        locked_until: None,
                    },
                ));
            }
        }
        let locked = lockouts.len();
        directory.restore_dirty(DirtyState {
            tokens,
            lockouts,
            day_codes: Vec::new(),
        });

        flush(&mut store, &directory, Some(Duration::from_micros(1)));

        let dirty = directory.take_dirty();
        assert!(dirty.tokens.is_empty() && dirty.lockouts.is_empty());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        for i in 0..(3 * ROWS_PER_WRITE + 5) {
            let user = store.user(&format!("user{i}")).unwrap().unwrap();
            let token = &store.tokens(Some(user.id)).unwrap()[0];
            assert_eq!(token.state.next_counter, 10 + i as u64, "user{i}");
            let expected = if i % 7 == 0 { 3 } else { 0 };
            assert_eq!(user.lockout.failures, expected, "user{i}");
        }
        assert!(locked > ROWS_PER_WRITE / 7);
    }

    #[test]
    fn the_journal_a_crash_left_is_applied_at_start_and_removed() {
        use crate::state::journal::{Entry, Journal};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let new_token = |kind| crate::store::NewToken {
            params: TokenParams {
                kind,
                algorithm: Algorithm::Sha1,
                digits: 6,
            },
            secret: Zeroizing::new(b"12345678901234567890".to_vec()),
            counter: 5,
        };
        let hw = store.add_user("hw", None).unwrap();
        let hotp = store.add_token("hw", new_token(TokenKind::Hotp)).unwrap();
        store.add_user("soft", None).unwrap();
        let totp = store
            .add_token("soft", new_token(TokenKind::Totp { period: 30, t0: 0 }))
            .unwrap();
        let code = crate::store::IssuedCode {
            user_id: hw.id,
            code: Zeroizing::new("12345678".to_owned()),
            message: crate::store::NewMessage {
                channel: crate::delivery::Channel::Sms,
                to: "+15550100".to_owned(),
                subject: String::new(),
                body: Zeroizing::new("code".to_owned()),
                user_id: Some(hw.id),
                purpose: "preload",
            },
        };
        store
            .issue_day_codes(&[code], 1_000, 9_000_000_000, None)
            .unwrap();

        // What a killed server left: an HOTP counter, a failure, a used day code.
        let journal = Journal::open(dir.path()).unwrap();
        let hotp_state = TokenState {
            next_counter: 9,
            drift: 0,
        };
        journal
            .record(Entry::Token {
                id: hotp.id,
                state: hotp_state,
            })
            .unwrap();
        journal
            .record(Entry::Lockout {
                user_id: hw.id,
                state: LockoutState {
                    failures: 2,
                    locked_until: None,
                },
            })
            .unwrap();
        journal
            .record(Entry::DayCode {
                user_id: hw.id,
                issued_at: 1_000,
            })
            .unwrap();
        drop(journal);

        let now = 1_800_000_000;
        let left = recover_journal(&mut store, &VerifyPolicy::default(), now).unwrap();
        assert_eq!((left.records, left.other_boot), (3, false));
        let tokens = store.tokens(None).unwrap();
        let state_of = |id| tokens.iter().find(|t| t.id == id).unwrap().state;
        assert_eq!(state_of(hotp.id), hotp_state);
        assert_eq!(
            state_of(totp.id).next_counter,
            0,
            "no fence in the same boot"
        );
        assert_eq!(store.user("hw").unwrap().unwrap().lockout.failures, 2);
        assert!(store.day_codes_since(0).unwrap()[0].used);
        assert_eq!(
            crate::state::journal::read_leftover(dir.path())
                .unwrap()
                .segments,
            0,
            "applied and removed"
        );

        // A segment from another boot (power loss): TOTP tokens are fenced, HOTP left alone,
        // and a counter never moves back.
        let journal = Journal::open(dir.path()).unwrap();
        journal
            .record(Entry::Token {
                id: hotp.id,
                state: TokenState {
                    next_counter: 7,
                    drift: 0,
                },
            })
            .unwrap();
        drop(journal);
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(".journal"))
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[8] ^= 0xff;
        std::fs::write(&segment, bytes).unwrap();
        let left = recover_journal(&mut store, &VerifyPolicy::default(), now).unwrap();
        assert!(left.other_boot);
        let tokens = store.tokens(None).unwrap();
        let state_of = |id| tokens.iter().find(|t| t.id == id).unwrap().state;
        assert_eq!(state_of(hotp.id).next_counter, 9);
        let policy = VerifyPolicy::default();
        assert_eq!(
            state_of(totp.id).next_counter,
            now / 30 + u64::from(policy.max_drift) + u64::from(policy.totp_window) + 1
        );
    }
}
