//! The day-code scheduler: the actor that sends preload day codes once a day.
//!
//! At `delivery.preload.send_at` (UTC) it works through every preload user who needs a
//! code (none yet, used, or expiring before the next run), in batches of
//! `delivery.preload.batch`. Each batch is one transaction that writes the codes, their
//! outbox messages and the batch's progress (the last user id done) together, so a
//! restart resumes after the last committed batch and never sends a code twice. A run
//! is keyed by its day; a finished day is not run again. Before each batch the scheduler
//! takes (or renews) a lease in the store, so that of several servers sharing one store
//! only one runs the batch; the embedded SQLite store is the lease's first implementation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{issue_day_codes, Delivery};
use crate::state::Directory;
use crate::store::{Store, StoreError};

/// The lease's name.
const LEASE: &str = "daycode-batch";
/// How long a lease lasts without renewal.
const LEASE_SECS: i64 = 120;

/// Messages of the [`DayCodeScheduler`].
pub enum SchedulerMsg {
    /// Check whether a run is due.
    Tick,
    /// Run today's batch now, whatever the time (`tollgate daycode send` and tests).
    RunNow,
    /// A run ended.
    Finished,
}

/// Start-up arguments of the [`DayCodeScheduler`].
pub struct SchedulerArgs {
    /// The delivery service.
    pub delivery: Arc<Delivery>,
    /// The directory in memory (new codes go there).
    pub directory: Arc<Directory>,
    /// The store's directory (the run opens its own connection).
    pub data_dir: PathBuf,
}

/// The actor that runs the daily batch.
pub struct DayCodeScheduler;

/// State of the [`DayCodeScheduler`].
pub struct SchedulerState {
    args: Arc<SchedulerArgs>,
    holder: String,
    running: bool,
}

impl Actor for DayCodeScheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        args: SchedulerArgs,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        for reason in ["batch", "replace"] {
            metrics::counter!(crate::metrics::DAYCODES_ISSUED_TOTAL, "reason" => reason)
                .increment(0);
        }
        myself.send_interval(Duration::from_secs(30), || SchedulerMsg::Tick);
        let _ = myself.cast(SchedulerMsg::Tick);
        Ok(SchedulerState {
            holder: node_id(&args.data_dir),
            args: Arc::new(args),
            running: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SchedulerMsg::Tick | SchedulerMsg::RunNow => {
                let now = crate::unix_now();
                let due = matches!(msg, SchedulerMsg::RunNow) || is_due(&state.args, now);
                if due && !state.running {
                    state.running = true;
                    let args = Arc::clone(&state.args);
                    let holder = state.holder.clone();
                    let me = myself.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = run(&args, &holder, now) {
                            tracing::error!(error = %e, "day-code batch stopped; it resumes at the next check");
                        }
                        let _ = me.cast(SchedulerMsg::Finished);
                    });
                }
            }
            SchedulerMsg::Finished => state.running = false,
        }
        Ok(())
    }
}

/// Who holds the lease: this machine and data directory. A server restarted after a crash
/// is the same holder, so it takes its unfinished run back at once instead of waiting for
/// its own lease to run out; another server sharing the store is another holder.
fn node_id(data_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    format!("{host}:{}", dir.display())
}

/// The key of the run that covers `now`: the day number since the epoch (UTC).
pub fn run_key(now: u64) -> String {
    format!("day-{}", now / 86_400)
}

fn is_due(args: &SchedulerArgs, now: u64) -> bool {
    let Some(at) = args.delivery.config.preload.send_at_minutes() else {
        return false;
    };
    (now % 86_400) / 60 >= u64::from(at)
}

/// Runs (or resumes) the batch of the day of `now`. Blocking: call it on a thread that may
/// block.
pub fn run(args: &SchedulerArgs, holder: &str, now: u64) -> Result<usize, StoreError> {
    let mut store = Store::open(&args.data_dir)?;
    let day = run_key(now);
    let mut after = match store.run_progress(&day)? {
        Some((_, true)) => return Ok(0),
        Some((last, false)) => last,
        None => 0,
    };
    let p = &args.delivery.config.preload;
    let mut sent = 0;
    let started = std::time::Instant::now();
    loop {
        let t = crate::unix_now() as i64;
        if !store.try_lease(LEASE, holder, t, LEASE_SECS)? {
            tracing::info!("another server holds the day-code batch lease");
            return Ok(sent);
        }
        let users = store.preload_users(after, p.batch, t, 86_400)?;
        let Some(&(last, _)) = users.last() else {
            store.finish_run(&day)?;
            store.release_lease(LEASE, holder)?;
            tracing::info!(day = %day, codes = sent, elapsed_ms = started.elapsed().as_millis() as u64, "day-code batch finished");
            return Ok(sent);
        };
        sent += issue_day_codes(
            &args.delivery,
            &mut store,
            &args.directory,
            &users,
            Some((&day, last)),
            "batch",
        )?;
        after = last;
        args.delivery.kick();
        if p.batch_pause_ms > 0 {
            std::thread::sleep(Duration::from_millis(p.batch_pause_ms));
        }
    }
}
