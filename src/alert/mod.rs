//! Tiered alerting with a durable outbox.
//!
//! An alert is one check that fails, warns or cannot be evaluated (one per
//! check, whatever partition it last looked at: the newest partition it has
//! seen drives it), a warehouse that is down, or a partition the gate
//! quarantined (one per partition). Its state (`ok → pending → firing → resolved`, in
//! `state.rs`) lives in the registry. The routes file (`config::routes`,
//! with the labels, matchers, receivers' settings and silences it names) says
//! which receivers hear of it; `router.rs` decides when (grouping by
//! dataset within `group_wait`, repeats, resolves, silences, holding back
//! the errors a down warehouse causes, digests). Every notification is
//! written to the registry's outbox before anything is sent, and
//! `dispatch.rs` delivers it with retries, one worker per receiver.
//! `receivers/` holds one file per receiver kind, each speaking its
//! service's format. `manager.rs` is what the agent calls.

pub mod dispatch;
pub mod manager;
pub mod model;
pub mod receivers;
pub mod router;
pub mod silences;
pub mod state;

pub use dispatch::{Attempt, Dispatcher};
pub use manager::{AlertError, AlertManager, FiringAlert, SilenceError};
pub use model::{Alert, AlertDetails, Annotations, Status};
pub use silences::FieldError;
