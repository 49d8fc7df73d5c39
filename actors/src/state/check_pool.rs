//! The password-check pool: the threads that run Argon2id checks.
//!
//! One thread per core, each at the lowest scheduling priority the kernel has
//! (`SCHED_IDLE`, [`crate::sched::idle`]): a check runs on every core that nothing else
//! wants, and a UDP worker (or any ordinary thread) that wakes takes its core from a check
//! at once instead of at the end of the check's time slice. A morning rush of first logins
//! thus goes as fast as the idle cores allow while logins that need no Argon2 check keep
//! their latency. The price, by design: while the workers keep every core busy, first
//! logins wait (bounded by `passwords.max_pending_checks`, beyond which they are shed).
//!
//! More threads than cores would only make each check slower; the Argon2 working memory
//! kept between checks (`store/password.rs`) is sized for the same count.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

type Job = Box<dyn FnOnce() + Send>;

/// The pool; dropping it lets its threads finish the jobs queued and end.
pub struct CheckPool {
    jobs: Sender<Job>,
}

impl CheckPool {
    /// Starts `threads` threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<CheckPool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("tollgate-argon2-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(CheckPool { jobs })
    }

    /// Runs `check` on a pool thread and waits for its result; `None` when the pool's
    /// threads are gone or the check panicked.
    pub async fn run<R: Send + 'static>(
        &self,
        check: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(check());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    crate::sched::idle();
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else {
            return;
        };
        // A check that panics loses its own answer (the caller sees `None`), not the
        // thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn checks_run_on_idle_priority_threads_at_most_as_many_at_once_as_threads() {
        let pool = Arc::new(CheckPool::start(2).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let pool = Arc::clone(&pool);
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        (i, crate::sched::current_policy())
                    })
                    .await
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let (n, policy) = task.await.unwrap().expect("an answer");
            assert_eq!(n, i);
            // The kernel may refuse SCHED_IDLE only in a sandbox that forbids the call;
            // the fallback is the lowest nice value.
            assert!(
                policy == libc::SCHED_IDLE || crate::sched::current_nice() == 19,
                "policy {policy}"
            );
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
    }

    #[tokio::test]
    async fn a_check_that_panics_answers_none_and_the_pool_goes_on() {
        let pool = CheckPool::start(1).unwrap();
        assert_eq!(pool.run(|| -> u8 { panic!("a broken check") }).await, None);
        assert_eq!(pool.run(|| 7).await, Some(7));
    }
}
