//! Configuration: `warden.yaml`, check files and alert routes, loaded in two
//! stages (raw serde structs with spans, then validated typed values).

mod model;

pub use model::*;
