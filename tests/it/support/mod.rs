//! What the integration tests share: a database per engine, a registry,
//! projects on disk, the `warden` binary run in them, the agent (in-process
//! or the real binary), and local receivers for alert deliveries.

#[macro_use]
pub mod db;
#[macro_use]
pub mod registry;
pub mod agent;
pub mod alerts;
pub mod cli;
#[macro_use]
pub mod gate;
pub mod lineage;
pub mod receiver;
pub mod smtp;
pub mod tools;
