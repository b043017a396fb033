//! A configuration generation and the run queues built from it: what the
//! scheduler enqueues into, what the lane workers take from, and what the
//! HTTP app reports (queue depths, each warehouse's circuit).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::circuit::Circuit;
use crate::check::Dataset;
use crate::check::{Runner, Scope};
use crate::config::Config;

/// Runs that may wait in one warehouse's queue, at the least: a lane holds
/// a place for each of its datasets (see [`Lane::new`]).
pub const QUEUE_CAPACITY: usize = 1024;

/// One loaded configuration and everything built from it. A reload builds
/// a new generation; runs already under way finish on the one they started
/// with.
pub struct Generation {
    /// Increases by one with each reload.
    pub number: u64,
    pub config: Arc<Config>,
    pub runner: Arc<Runner>,
    /// The run queue of each warehouse, by warehouse name (none when no
    /// agent runs the schedules, as in tests of the HTTP app).
    pub lanes: BTreeMap<String, Lane>,
    pub loaded_at: DateTime<Utc>,
}

impl Generation {
    /// Generation `number` of `config`, loaded now.
    pub fn new(
        number: u64,
        config: Arc<Config>,
        runner: Arc<Runner>,
        lanes: BTreeMap<String, Lane>,
    ) -> Self {
        Self {
            number,
            config,
            runner,
            lanes,
            loaded_at: Utc::now(),
        }
    }

    /// Runs waiting in every warehouse queue of this generation.
    pub fn queued(&self) -> usize {
        self.lanes.values().map(Lane::depth).sum()
    }
}

/// One run of one dataset.
pub struct Job {
    pub config: Arc<Config>,
    pub runner: Arc<Runner>,
    /// Index into `config.datasets`.
    pub index: usize,
    pub scope: Scope,
    pub scheduled_at: DateTime<Utc>,
    pub enqueued_at: Instant,
}

impl Job {
    /// The scheduled run of dataset `index` for the tick `at`: a partitioned
    /// dataset checks its latest complete partition at that time.
    pub fn scheduled(generation: &Generation, index: usize, at: DateTime<Utc>) -> Self {
        let config = generation.config.clone();
        let scope = Scope::scheduled(&config.datasets[index], at, config.agent.timezone);
        Self {
            runner: generation.runner.clone(),
            config,
            index,
            scope,
            scheduled_at: at,
            enqueued_at: Instant::now(),
        }
    }

    pub fn dataset(&self) -> &Dataset {
        &self.config.datasets[self.index]
    }
}

/// What became of a job handed to a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The dataset is already queued or running.
    AlreadyQueued,
    Full,
    /// The agent is shutting down.
    Closed,
}

/// The datasets of a lane queued or running, so a dataset is never queued
/// twice; shared by the lane and its worker.
pub type Busy = Arc<Mutex<HashSet<String>>>;

/// A warehouse's queue, circuit and the datasets it holds.
pub struct Lane {
    tx: mpsc::Sender<Job>,
    pub circuit: Arc<Circuit>,
    busy: Busy,
    depth: Arc<AtomicUsize>,
}

impl Lane {
    /// A lane for `datasets` datasets behind `circuit`, and the receiving
    /// end its worker takes the runs from. A dataset is queued at most once
    /// (queued or running), so a place per dataset means a tick is never
    /// skipped for want of room, however many datasets share a warehouse;
    /// places are taken as runs are queued, not held in advance.
    pub fn new(circuit: Arc<Circuit>, datasets: usize) -> (Self, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(datasets.max(QUEUE_CAPACITY));
        let lane = Self {
            tx,
            circuit,
            busy: Arc::default(),
            depth: Arc::default(),
        };
        (lane, rx)
    }

    pub fn enqueue(&self, job: Job) -> Enqueued {
        let name = job.dataset().name.to_string();
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if busy.contains(&name) {
            return Enqueued::AlreadyQueued;
        }
        // Counted before it is sent: the worker may take it, and count it
        // out, before `try_send` returns, and the depth must never go below 0.
        self.depth.fetch_add(1, Ordering::Relaxed);
        let sent = self.tx.try_send(job);
        if sent.is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => {
                busy.insert(name);
                Enqueued::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => Enqueued::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Enqueued::Closed,
        }
    }

    /// Runs waiting in the queue (not yet started).
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// The datasets queued or running; the worker removes a dataset once
    /// its run is recorded.
    pub fn busy(&self) -> &Busy {
        &self.busy
    }

    /// The queue's depth counter; the worker decrements it as it takes a
    /// run.
    pub fn depth_counter(&self) -> &Arc<AtomicUsize> {
        &self.depth
    }
}
