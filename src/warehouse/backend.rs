//! What a [`Warehouse`](super::Warehouse) needs from an engine's connection:
//! run one statement and hand back its rows as [`Value`]s. The SQL engines
//! implement it once, over sqlx pools ([`super::pooled`]); an engine reached
//! another way (HTTP) implements it in its own file.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Value, WarehouseError};

/// Every row of a statement, each decoded on its own.
pub(crate) type Rows = Vec<Result<Vec<Value>, WarehouseError>>;

/// Why a statement returned no rows.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No connection came within the acquire timeout.
    NoConnection,
    /// The statement did not finish by the deadline; `waited` is how long
    /// the connection took to come before it started.
    TimedOut { waited: Duration },
    /// The connection or the statement failed.
    Failed(WarehouseError),
}

/// A connected engine.
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Waits for a connection (bounded by the pool's acquire timeout), says
    /// so on `connected`, then runs `sql` with `params` bound in order,
    /// giving up at `deadline`.
    fn fetch_all<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [Value],
        deadline: Instant,
        connected: oneshot::Sender<()>,
    ) -> BoxFuture<'a, Result<Rows, Failure>>;

    /// Makes one connection outside the pool and closes it: why the pool had
    /// none to give.
    fn connect_once(&self) -> BoxFuture<'_, Result<(), WarehouseError>>;

    /// Closes every pooled connection.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// The size of the pool.
    fn max_connections(&self) -> u32;
}
