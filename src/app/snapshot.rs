//! [`Snapshot`]: a value computed at most once per period and shared by
//! every reader, so that a page loaded by many people at once costs the
//! registry one set of reads per period, not one per load.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

/// A shared value refreshed at most every `max_age`, for one `key` (a new
/// key, such as a new configuration generation, refreshes it at once).
/// While one reader refreshes it, the others get the previous value.
pub struct Snapshot<T> {
    max_age: Duration,
    current: RwLock<Option<Taken<T>>>,
    refresh: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
}

struct Taken<T> {
    at: Instant,
    key: u64,
    value: Arc<T>,
}

impl<T> Snapshot<T> {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            refreshes: AtomicU64::new(0),
        }
    }

    /// The value for `key`: the current one while it is younger than
    /// `max_age`, else the one `make` computes (once, whoever asks at the
    /// same time; those who find a refresh under way get the previous value
    /// of the same key, or wait for the new one when there is none).
    pub async fn get<F, Fut>(&self, key: u64, make: F) -> Arc<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        if let Some(value) = self.current(key, true) {
            return value;
        }
        let _turn = match self.refresh.try_lock() {
            Ok(turn) => turn,
            Err(_) => match self.current(key, false) {
                Some(previous) => return previous,
                None => self.refresh.lock().await,
            },
        };
        if let Some(value) = self.current(key, true) {
            return value;
        }
        let value = Arc::new(make().await);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Taken {
            at: Instant::now(),
            key,
            value: value.clone(),
        });
        value
    }

    /// How many times the value was computed.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    fn current(&self, key: u64, fresh: bool) -> Option<Arc<T>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|t| t.key == key && (!fresh || t.at.elapsed() < self.max_age))
            .map(|t| t.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn computed_once_per_period_whoever_asks() {
        let snapshot = Arc::new(Snapshot::new(Duration::from_millis(400)));
        let loads = (0..64).map(|_| {
            let snapshot = snapshot.clone();
            tokio::spawn(async move {
                *snapshot
                    .get(1, || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        "page"
                    })
                    .await
            })
        });
        for load in futures::future::join_all(loads).await {
            assert_eq!(load.unwrap(), "page");
        }
        assert_eq!(snapshot.refreshes(), 1);
        assert_eq!(*snapshot.get(1, || async { "again" }).await, "page");
        assert_eq!(snapshot.refreshes(), 1, "still young: not computed");
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(*snapshot.get(1, || async { "new" }).await, "new");
        assert_eq!(snapshot.refreshes(), 2);
        // A new configuration refreshes at once.
        assert_eq!(*snapshot.get(2, || async { "reloaded" }).await, "reloaded");
        assert_eq!(snapshot.refreshes(), 3);
    }
}
