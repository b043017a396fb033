//! warden: a data-quality and freshness agent.
//!
//! Checks declared in YAML ([`config`]) are compiled by the [`check`] planner
//! into as few statements as possible, run against a [`warehouse`], evaluated,
//! and recorded in the [`registry`]; failing checks become alerts
//! ([`alert`]) delivered through a durable outbox.

#![forbid(unsafe_code)]

pub mod agent;
pub mod alert;
pub mod app;
pub mod check;
pub mod config;
pub mod demo;
pub mod detect;
pub mod discover;
pub mod domain;
pub mod format;
pub mod gate;
pub mod http;
pub mod init;
pub mod lineage;
pub mod metrics;
pub mod registry;
pub mod source;
pub mod warehouse;
