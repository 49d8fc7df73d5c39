//! The store's part of delivered codes: each user's delivery settings, the durable outbox
//! (bodies sealed, since they hold codes), preload day codes (sealed), the progress of the
//! daily batch, and the lease that lets one server run it.

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use zeroize::Zeroizing;

use super::{now_unix, Change, Store, StoreError};
use crate::delivery::Channel;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS user_delivery (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    method TEXT NOT NULL,
    mobile TEXT,
    email TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    subject TEXT NOT NULL,
    body BLOB NOT NULL,
    user_id INTEGER,
    purpose TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(dead, next_attempt_at);
CREATE TABLE IF NOT EXISTS day_codes (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    code BLOB NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX IF NOT EXISTS day_codes_issued ON day_codes(issued_at);
CREATE TABLE IF NOT EXISTS schedule_runs (
    day TEXT PRIMARY KEY,
    last_user_id INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// How a user gets their second factor.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Method {
    /// A soft or hardware token (the default).
    #[default]
    Token,
    /// A fresh code sent at each login.
    Realtime(Channel),
    /// A day code sent ahead of the login.
    Preload(Channel),
    /// Approve or decline on an enrolled phone.
    Push,
}

impl Method {
    /// The name used in the store and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Token => "token",
            Method::Realtime(Channel::Sms) => "realtime-sms",
            Method::Realtime(Channel::Email) => "realtime-email",
            Method::Realtime(Channel::Voice) => "realtime-voice",
            Method::Preload(Channel::Sms) => "preload-sms",
            Method::Preload(Channel::Email) => "preload-email",
            Method::Preload(Channel::Voice) => "preload-voice",
            // Push channels belong to the push method; `parse` never makes these.
            Method::Realtime(Channel::Fcm | Channel::Apns)
            | Method::Preload(Channel::Fcm | Channel::Apns)
            | Method::Push => "push",
        }
    }

    /// Parses a method name; `preload-voice` is refused (a day code read out once is
    /// gone before it is needed).
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "token" => Method::Token,
            "realtime-sms" => Method::Realtime(Channel::Sms),
            "realtime-email" => Method::Realtime(Channel::Email),
            "realtime-voice" => Method::Realtime(Channel::Voice),
            "preload-sms" => Method::Preload(Channel::Sms),
            "preload-email" => Method::Preload(Channel::Email),
            "push" => Method::Push,
            _ => return None,
        })
    }
}

/// A user's delivery settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliverySettings {
    /// How the second factor reaches them.
    pub method: Method,
    /// Mobile number (for SMS and voice).
    pub mobile: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
}

impl DeliverySettings {
    /// Where a message of `channel` goes.
    pub fn destination(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Sms | Channel::Voice => self.mobile.as_deref(),
            Channel::Email => self.email.as_deref(),
            Channel::Fcm | Channel::Apns => None,
        }
        .filter(|d| !d.is_empty())
    }
}

/// A message to put in the outbox.
pub struct NewMessage {
    /// The channel.
    pub channel: Channel,
    /// Number or address.
    pub to: String,
    /// Subject (e-mail).
    pub subject: String,
    /// Text; sealed at rest.
    pub body: Zeroizing<String>,
    /// The user it is for.
    pub user_id: Option<i64>,
    /// Why it is sent (`realtime`, `preload`, `preload-replace`).
    pub purpose: &'static str,
}

/// A message in the outbox.
pub struct OutboxRecord {
    /// Id.
    pub id: i64,
    /// The channel.
    pub channel: Channel,
    /// Number or address.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Text, opened (only when asked for).
    pub body: Option<Zeroizing<String>>,
    /// The user it is for.
    pub user_id: Option<i64>,
    /// Why it is sent.
    pub purpose: String,
    /// When it was written.
    pub created_at: i64,
    /// A random number drawn when it was written (the nonce that seals its body, which is
    /// no secret): with the id, it names the message to a gateway the same way at every
    /// attempt, across restarts, and differently from any other message.
    pub key: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is next tried.
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Whether it is a dead letter.
    pub dead: bool,
}

/// A user's day code.
pub struct DayCodeRecord {
    /// The user.
    pub user_id: i64,
    /// The code, opened.
    pub code: Zeroizing<String>,
    /// When it was issued (Unix milliseconds).
    pub issued_at: i64,
    /// When it stops being valid.
    pub expires_at: i64,
    /// Whether it was used.
    pub used: bool,
}

/// A day code to issue, with the message that carries it.
pub struct IssuedCode {
    /// The user.
    pub user_id: i64,
    /// The code.
    pub code: Zeroizing<String>,
    /// Its message.
    pub message: NewMessage,
}

fn outbox_aad(id: i64) -> String {
    format!("outbox:{id}")
}

fn day_code_aad(user_id: i64, issued_at: i64) -> String {
    format!("daycode:{user_id}:{issued_at}")
}

impl Store {
    /// Sets a user's delivery settings (the fields given; `None` keeps a field).
    pub fn set_delivery(
        &mut self,
        name: &str,
        method: Option<Method>,
        mobile: Option<&str>,
        email: Option<&str>,
    ) -> Result<DeliverySettings, StoreError> {
        let user = self.require_user(name)?;
        let mut d = user.delivery.clone();
        if let Some(m) = method {
            d.method = m;
        }
        if let Some(m) = mobile {
            d.mobile = (!m.is_empty()).then(|| m.to_owned());
        }
        if let Some(e) = email {
            d.email = (!e.is_empty()).then(|| e.to_owned());
        }
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO user_delivery (user_id, method, mobile, email) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(user_id) DO UPDATE SET method = excluded.method, mobile = excluded.mobile, email = excluded.email",
            params![user.id, d.method.as_str(), d.mobile, d.email],
        )?;
        Store::log_change(&tx, Change::User(user.id))?;
        tx.commit()?;
        Ok(d)
    }

    /// Sets the delivery settings of many users in one transaction, creating the users
    /// (without a password) that do not exist when `create` is set. Returns (updated,
    /// created).
    pub fn set_delivery_many(
        &mut self,
        rows: &[(String, DeliverySettings)],
        create: bool,
    ) -> Result<(u64, u64), StoreError> {
        for (name, _) in rows {
            super::validate_user_name(name)?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut updated, mut created) = (0, 0);
        {
            let mut find = tx.prepare_cached("SELECT id FROM users WHERE name_key = ?1")?;
            let mut add = tx.prepare_cached(
                "INSERT INTO users (name, name_key, created_at) VALUES (?1, ?2, ?3)",
            )?;
            let mut set = tx.prepare_cached(
                "INSERT INTO user_delivery (user_id, method, mobile, email) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(user_id) DO UPDATE SET method = excluded.method, mobile = excluded.mobile, email = excluded.email",
            )?;
            for (name, d) in rows {
                let key = super::name_key(name);
                let id: Option<i64> = find.query_row(params![key], |r| r.get(0)).optional()?;
                let id = match id {
                    Some(id) => {
                        updated += 1;
                        id
                    }
                    None if create => {
                        add.execute(params![name, key, now_unix()])?;
                        created += 1;
                        tx.last_insert_rowid()
                    }
                    None => return Err(StoreError::NoSuchUser(name.clone())),
                };
                set.execute(params![id, d.method.as_str(), d.mobile, d.email])?;
            }
        }
        Store::log_change(&tx, Change::All)?;
        tx.commit()?;
        Ok((updated, created))
    }

    /// Writes messages to the outbox in one transaction and returns their ids.
    pub fn enqueue(&mut self, messages: &[NewMessage]) -> Result<Vec<i64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let refs: Vec<&NewMessage> = messages.iter().collect();
        let ids = Store::insert_messages(&tx, &self.key, &refs)?;
        tx.commit()?;
        Ok(ids)
    }

    fn row_to_message(
        &self,
        r: &rusqlite::Row<'_>,
        open: bool,
    ) -> Result<OutboxRecord, StoreError> {
        let id: i64 = r.get(0)?;
        let channel: String = r.get(1)?;
        let sealed: Vec<u8> = r.get(4)?;
        let body = if open {
            let plain = self.key.open(&outbox_aad(id), &sealed)?;
            Some(Zeroizing::new(String::from_utf8_lossy(&plain).into_owned()))
        } else {
            None
        };
        let mut key = [0u8; 8];
        if let Some(nonce) = sealed.get(..8) {
            key.copy_from_slice(nonce);
        }
        Ok(OutboxRecord {
            key: u64::from_be_bytes(key),
            id,
            channel: Channel::parse(&channel).unwrap_or(Channel::Sms),
            to: r.get(2)?,
            subject: r.get(3)?,
            body,
            user_id: r.get(5)?,
            purpose: r.get(6)?,
            created_at: r.get(7)?,
            attempts: r.get::<_, i64>(8)?.clamp(0, u32::MAX as i64) as u32,
            next_attempt_at: r.get(9)?,
            last_error: r.get(10)?,
            dead: r.get::<_, i64>(11)? != 0,
        })
    }

    const OUTBOX_COLUMNS: &'static str = "id, channel, destination, subject, body, user_id, purpose, created_at, attempts, next_attempt_at, last_error, dead";

    /// Messages due at `now`, oldest first, except those in `busy`; bodies opened.
    pub fn due_messages(
        &self,
        now: i64,
        limit: usize,
        busy: &HashSet<i64>,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox WHERE dead = 0 AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
            Self::OUTBOX_COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![now, (limit + busy.len()) as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            if busy.contains(&id) {
                continue;
            }
            out.push(self.row_to_message(r, true)?);
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// The earliest time a live message is due, if any.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE dead = 0",
            [],
            |r| r.get(0),
        )?)
    }

    /// Makes every live message of `channel` due at `now` (those waiting out a back-off);
    /// returns how many were waiting.
    pub fn due_now(&mut self, channel: Channel, now: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "UPDATE outbox SET next_attempt_at = ?2 WHERE dead = 0 AND channel = ?1 AND next_attempt_at > ?2",
            params![channel.as_str(), now],
        )?)
    }

    /// A delivered message leaves the outbox.
    pub fn delivered(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub fn retry_later(
        &mut self,
        id: i64,
        attempts: u32,
        at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE id = ?1",
            params![id, attempts, at, error],
        )?;
        Ok(())
    }

    /// Turns a message into a dead letter.
    pub fn mark_dead(&mut self, id: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = ?2, last_error = ?3, dead = 1 WHERE id = ?1",
            params![id, attempts, error],
        )?;
        Ok(())
    }

    /// Messages waiting (or, with `dead`, the dead letters), oldest first; bodies stay
    /// sealed.
    pub fn outbox(&self, dead: bool, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox WHERE dead = ?1 ORDER BY id LIMIT ?2",
            Self::OUTBOX_COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params![i64::from(dead), limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(self.row_to_message(r, false)?);
        }
        Ok(out)
    }

    /// Counts of live and dead messages.
    pub fn outbox_counts(&self) -> Result<(u64, u64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM outbox",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// Puts a dead letter back in the queue, due now.
    pub fn resend(&mut self, id: i64) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE outbox SET dead = 0, attempts = 0, next_attempt_at = ?2, last_error = NULL WHERE id = ?1 AND dead = 1",
            params![id, now_unix()],
        )?;
        if n == 0 {
            return Err(StoreError::Invalid(format!("no dead letter with id {id}")));
        }
        Ok(())
    }

    /// Drops a dead letter for good (an admin decided it must not go out).
    pub fn discard(&mut self, id: i64) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM outbox WHERE id = ?1 AND dead = 1", params![id])?;
        if n == 0 {
            return Err(StoreError::Invalid(format!("no dead letter with id {id}")));
        }
        Ok(())
    }

    // ----- day codes -----

    /// Issues day codes and writes their messages in one transaction, records the batch's
    /// progress for `day` when given, and logs one change so that running servers load the
    /// new codes.
    pub fn issue_day_codes(
        &mut self,
        codes: &[IssuedCode],
        issued_at: i64,
        expires_at: i64,
        progress: Option<(&str, i64)>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO day_codes (user_id, code, issued_at, expires_at, used_at) VALUES (?1, ?2, ?3, ?4, NULL)
                 ON CONFLICT(user_id) DO UPDATE SET code = excluded.code, issued_at = excluded.issued_at,
                 expires_at = excluded.expires_at, used_at = NULL",
            )?;
            for c in codes {
                let sealed = self
                    .key
                    .seal(&day_code_aad(c.user_id, issued_at), c.code.as_bytes());
                put.execute(params![c.user_id, sealed, issued_at, expires_at])?;
            }
        }
        let messages: Vec<&NewMessage> = codes.iter().map(|c| &c.message).collect();
        Store::insert_messages(&tx, &self.key, &messages)?;
        if let Some((day, last)) = progress {
            tx.execute(
                "INSERT INTO schedule_runs (day, last_user_id) VALUES (?1, ?2)
                 ON CONFLICT(day) DO UPDATE SET last_user_id = excluded.last_user_id",
                params![day, last],
            )?;
        }
        Store::log_change(&tx, Change::DayCodes(issued_at))?;
        tx.commit()?;
        Ok(())
    }

    fn insert_messages(
        tx: &rusqlite::Connection,
        key: &super::MasterKey,
        messages: &[&NewMessage],
    ) -> Result<Vec<i64>, StoreError> {
        // Ids are taken inside the immediate transaction so that each body is sealed with
        // its own id as associated data.
        let first: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox", [], |r| {
            r.get(0)
        })?;
        let now = now_unix();
        let mut insert = tx.prepare_cached(
            "INSERT INTO outbox (id, channel, destination, subject, body, user_id, purpose, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )?;
        let mut ids = Vec::with_capacity(messages.len());
        for (id, m) in (first..).zip(messages) {
            let sealed = key.seal(&outbox_aad(id), m.body.as_bytes());
            insert.execute(params![
                id,
                m.channel.as_str(),
                m.to,
                m.subject,
                sealed,
                m.user_id,
                m.purpose,
                now
            ])?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Day codes issued at or after `since`.
    pub fn day_codes_since(&self, since: i64) -> Result<Vec<DayCodeRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT user_id, code, issued_at, expires_at, used_at FROM day_codes WHERE issued_at >= ?1",
        )?;
        let mut rows = stmt.query(params![since])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let user_id: i64 = r.get(0)?;
            let sealed: Vec<u8> = r.get(1)?;
            let issued_at: i64 = r.get(2)?;
            let plain = self.key.open(&day_code_aad(user_id, issued_at), &sealed)?;
            out.push(DayCodeRecord {
                user_id,
                code: Zeroizing::new(String::from_utf8_lossy(&plain).into_owned()),
                issued_at,
                expires_at: r.get(3)?,
                used: r.get::<_, Option<i64>>(4)?.is_some(),
            });
        }
        Ok(out)
    }

    /// Records that a day code was used (if it is still the one issued at `issued_at`).
    pub fn day_code_used(
        &mut self,
        user_id: i64,
        issued_at: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE day_codes SET used_at = ?3 WHERE user_id = ?1 AND issued_at = ?2 AND used_at IS NULL",
            params![user_id, issued_at, at],
        )?;
        Ok(())
    }

    /// Users of a preload method, after `after` by id, who need a day code at `now`: none
    /// yet, used, or expiring within `horizon` seconds. Disabled users are skipped.
    pub fn preload_users(
        &self,
        after: i64,
        limit: usize,
        now: i64,
        horizon: i64,
    ) -> Result<Vec<(i64, DeliverySettings)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.id, d.method, d.mobile, d.email FROM users u
             JOIN user_delivery d ON d.user_id = u.id
             LEFT JOIN day_codes c ON c.user_id = u.id
             WHERE u.id > ?1 AND u.disabled = 0 AND d.method LIKE 'preload-%'
               AND (c.user_id IS NULL OR c.used_at IS NOT NULL OR c.expires_at <= ?3)
             ORDER BY u.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64, now + horizon], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                DeliverySettings {
                    method: Method::parse(&r.get::<_, String>(1)?).unwrap_or_default(),
                    mobile: r.get(2)?,
                    email: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The batch's progress for `day`: the last user id done and whether it finished.
    pub fn run_progress(&self, day: &str) -> Result<Option<(i64, bool)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_user_id, finished_at FROM schedule_runs WHERE day = ?1",
                params![day],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?.is_some())),
            )
            .optional()?)
    }

    /// Marks the batch of `day` finished.
    pub fn finish_run(&mut self, day: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO schedule_runs (day, last_user_id, finished_at) VALUES (?1, 0, ?2)
             ON CONFLICT(day) DO UPDATE SET finished_at = excluded.finished_at",
            params![day, now_unix()],
        )?;
        Ok(())
    }

    // ----- leases -----

    /// Takes or renews the lease `name` for `holder` until `now + ttl`; false when another
    /// holder has it.
    pub fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: i64,
        ttl: i64,
    ) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.expires_at <= ?4 OR leases.holder = excluded.holder",
            params![name, holder, now + ttl, now],
        )?;
        Ok(n == 1)
    }

    /// Gives a lease up.
    pub fn release_lease(&mut self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
            params![name, holder],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn a_lease_has_one_holder_until_it_runs_out() {
        let (_d, mut s) = store();
        assert!(s.try_lease("batch", "a", 1000, 60).unwrap());
        assert!(!s.try_lease("batch", "b", 1030, 60).unwrap());
        assert!(
            s.try_lease("batch", "a", 1030, 60).unwrap(),
            "renewed by its holder"
        );
        assert!(
            s.try_lease("batch", "b", 1090, 60).unwrap(),
            "taken over once run out"
        );
        s.release_lease("batch", "a").unwrap();
        assert!(
            !s.try_lease("batch", "a", 1100, 60).unwrap(),
            "only the holder releases"
        );
        s.release_lease("batch", "b").unwrap();
        assert!(s.try_lease("batch", "a", 1100, 60).unwrap());
    }

    #[test]
    fn outbox_bodies_are_sealed_and_messages_leave_when_delivered() {
        let (dir, mut s) = store();
        let ids = s
            .enqueue(&[NewMessage {
                channel: Channel::Sms,
                to: "+447700900123".into(),
                subject: String::new(),
                body: Zeroizing::new("Your passcode is 314159".into()),
                user_id: None,
                purpose: "realtime",
            }])
            .unwrap();
        let raw = std::fs::read(dir.path().join("tollgate.db")).unwrap_or_default();
        let wal = std::fs::read(dir.path().join("tollgate.db-wal")).unwrap_or_default();
        for bytes in [&raw, &wal] {
            assert!(
                !bytes.windows(6).any(|w| w == b"314159"),
                "a code is stored in clear"
            );
        }
        let due = s.due_messages(i64::MAX, 10, &HashSet::new()).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            due[0].body.as_deref().map(String::as_str),
            Some("Your passcode is 314159")
        );
        s.retry_later(ids[0], 1, i64::MAX - 1, "503").unwrap();
        assert!(s
            .due_messages(now_unix(), 10, &HashSet::new())
            .unwrap()
            .is_empty());
        s.mark_dead(ids[0], 2, "400").unwrap();
        assert_eq!(s.outbox_counts().unwrap(), (0, 1));
        s.resend(ids[0]).unwrap();
        assert_eq!(s.outbox_counts().unwrap(), (1, 0));
        assert!(s.resend(ids[0]).is_err(), "only a dead letter is resent");
        assert!(
            s.discard(ids[0]).is_err(),
            "only a dead letter is discarded"
        );
        s.delivered(ids[0]).unwrap();
        assert_eq!(s.outbox_counts().unwrap(), (0, 0));
    }

    #[test]
    fn a_channel_that_answers_again_brings_its_waiting_messages_forward() {
        let (_dir, mut s) = store();
        let message = |channel, to: &str| NewMessage {
            channel,
            to: to.into(),
            subject: String::new(),
            body: Zeroizing::new("Your passcode is 271828".into()),
            user_id: None,
            purpose: "realtime",
        };
        let ids = s
            .enqueue(&[
                message(Channel::Email, "a@example.com"),
                message(Channel::Email, "b@example.com"),
                message(Channel::Sms, "+447700900123"),
            ])
            .unwrap();
        let later = now_unix() + 600;
        for &id in &ids {
            s.retry_later(id, 3, later, "connection refused").unwrap();
        }
        s.mark_dead(ids[1], 8, "connection refused").unwrap();
        let now = now_unix();
        assert!(s.due_messages(now, 10, &HashSet::new()).unwrap().is_empty());
        // Only the live e-mail: not the dead letter, not the other channel.
        assert_eq!(s.due_now(Channel::Email, now).unwrap(), 1);
        let due = s.due_messages(now, 10, &HashSet::new()).unwrap();
        assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[0]]);
        // A message keeps its key from attempt to attempt; no two messages share one.
        let all = s.outbox(false, 10).unwrap();
        let again = s.outbox(false, 10).unwrap();
        assert_eq!(
            all.iter().map(|m| m.key).collect::<Vec<_>>(),
            again.iter().map(|m| m.key).collect::<Vec<_>>()
        );
        assert_ne!(all[0].key, all[1].key);
        assert_eq!(due[0].attempts, 3, "the attempts made are kept");
        assert_eq!(s.due_now(Channel::Email, now).unwrap(), 0);
    }
}
