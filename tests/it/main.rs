//! The integration tests: one binary, one module per area, and the shared
//! harness in `support`.

#[macro_use]
mod support;

mod agent;
mod airflow;
mod alerts;
mod anomaly;
mod auth;
mod cli;
mod cli_habits;
mod clickhouse;
mod config;
mod contract;
mod deploy;
mod discover;
mod engine;
mod gate;
mod history;
mod init;
mod lineage;
mod pages;
mod registry;
mod replicas;
mod retention;
mod secrets;
mod server;
mod warehouse_trust;
