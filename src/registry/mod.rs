//! The metadata registry: check history, schema baselines, partition states,
//! alert state and the notification outbox. SQLite by default, PostgreSQL for
//! production.
