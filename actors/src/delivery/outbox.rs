//! The durable outbox as the async side sees it: its own connection to the store, used on
//! blocking threads, one statement or transaction at a time.
//!
//! A message is in the outbox (committed) before anything tries to send it, and leaves it
//! only when a gateway said it was delivered, or as a dead letter an admin can resend.

use std::sync::{Arc, Mutex};

use crate::store::{Store, StoreError};

/// The outbox's connection to the store.
pub struct Outbox {
    store: Mutex<Store>,
}

impl Outbox {
    /// Opens a connection of its own to the store in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Arc<Outbox>, StoreError> {
        Ok(Arc::new(Outbox {
            store: Mutex::new(Store::open(dir)?),
        }))
    }

    /// Runs `f` with the store on a blocking thread.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut store = me.store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut store)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Invalid(format!("outbox task failed: {e}"))))
    }

    /// Runs `f` with the store on this thread (for threads that may block).
    pub fn run_here<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut store)
    }
}
