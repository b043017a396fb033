//! The circuit breaker of one warehouse. After [`FAILURE_THRESHOLD`]
//! attempts in a row fail to reach the warehouse, the circuit opens: its
//! checks report `error` "warehouse unavailable" at once instead of
//! hammering it, and a probe pings it with growing pauses until it answers,
//! which closes the circuit again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Failed attempts in a row that open the circuit.
pub const FAILURE_THRESHOLD: u32 = 3;
/// First pause between probes of an open circuit; doubled up to [`PROBE_MAX`].
pub const PROBE_MIN: Duration = Duration::from_secs(2);
pub const PROBE_MAX: Duration = Duration::from_secs(60);

/// What a change did to the circuit, for the caller to log, export and alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    /// The circuit just opened, for this reason.
    Opened(String),
    /// The circuit just closed.
    Closed,
}

#[derive(Debug)]
pub struct Circuit {
    warehouse: String,
    state: Mutex<State>,
    /// Whether a probe task is running for this circuit.
    probing: AtomicBool,
}

#[derive(Debug, Clone)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        since: DateTime<Utc>,
        reason: String,
    },
}

/// A snapshot of a circuit for the API and the status page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CircuitStatus {
    pub warehouse: String,
    pub up: bool,
    /// When the circuit opened, while it is open.
    pub down_since: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

impl Circuit {
    pub fn new(warehouse: impl Into<String>) -> Self {
        Self {
            warehouse: warehouse.into(),
            state: Mutex::new(State::Closed { failures: 0 }),
            probing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The message checks report while the circuit is open, or `None` when closed.
    pub fn open_reason(&self) -> Option<String> {
        match &*self.lock() {
            State::Closed { .. } => None,
            State::Open { since, reason } => Some(format!(
                "warehouse `{}` unavailable since {} (circuit open; not queried until a probe succeeds): {reason}",
                self.warehouse,
                since.format("%Y-%m-%d %H:%M:%S UTC")
            )),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(&*self.lock(), State::Open { .. })
    }

    /// An attempt reached the warehouse.
    pub fn success(&self) -> Change {
        let mut state = self.lock();
        let was_open = matches!(*state, State::Open { .. });
        *state = State::Closed { failures: 0 };
        if was_open {
            Change::Closed
        } else {
            Change::None
        }
    }

    /// An attempt could not reach the warehouse.
    pub fn failure(&self, reason: &str, now: DateTime<Utc>) -> Change {
        let mut state = self.lock();
        match &mut *state {
            State::Open { reason: r, .. } => {
                reason.clone_into(r);
                Change::None
            }
            State::Closed { failures } => {
                *failures += 1;
                if *failures >= FAILURE_THRESHOLD {
                    *state = State::Open {
                        since: now,
                        reason: reason.to_owned(),
                    };
                    Change::Opened(reason.to_owned())
                } else {
                    Change::None
                }
            }
        }
    }

    /// Marks a probe as started; false if one already runs.
    pub fn start_probe(&self) -> bool {
        !self.probing.swap(true, Ordering::AcqRel)
    }

    /// Marks the probe as ended.
    pub fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    pub fn status(&self) -> CircuitStatus {
        match &*self.lock() {
            State::Closed { .. } => CircuitStatus {
                warehouse: self.warehouse.clone(),
                up: true,
                down_since: None,
                reason: None,
            },
            State::Open { since, reason } => CircuitStatus {
                warehouse: self.warehouse.clone(),
                up: false,
                down_since: Some(*since),
                reason: Some(reason.clone()),
            },
        }
    }
}

/// The pause before probe number `attempt` (0-based) of an open circuit.
pub fn probe_delay(attempt: u32) -> Duration {
    PROBE_MIN
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(PROBE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let c = Circuit::new("main");
        let now = Utc::now();
        for _ in 1..FAILURE_THRESHOLD {
            assert_eq!(c.failure("refused", now), Change::None);
            assert!(!c.is_open());
        }
        assert_eq!(
            c.failure("refused", now),
            Change::Opened("refused".to_owned())
        );
        assert!(c.is_open());
        let reason = c.open_reason().expect("open");
        assert!(reason.contains("warehouse `main` unavailable"), "{reason}");
        assert_eq!(c.failure("reset", now), Change::None);
        assert_eq!(c.status().reason.as_deref(), Some("reset"));
        assert_eq!(c.success(), Change::Closed);
        assert!(!c.is_open());
        assert_eq!(c.success(), Change::None);
    }

    #[test]
    fn a_success_resets_the_count() {
        let c = Circuit::new("main");
        let now = Utc::now();
        for _ in 0..5 {
            for _ in 1..FAILURE_THRESHOLD {
                c.failure("refused", now);
            }
            c.success();
        }
        assert!(!c.is_open());
    }

    #[test]
    fn probes_back_off_to_a_ceiling() {
        assert_eq!(probe_delay(0), PROBE_MIN);
        assert_eq!(probe_delay(1), PROBE_MIN * 2);
        assert_eq!(probe_delay(10), PROBE_MAX);
        assert_eq!(probe_delay(u32::MAX), PROBE_MAX);
    }
}
