//! Checks: planning a dataset's checks into batched statements, executing
//! them, and evaluating observations into results.

mod result;

pub use result::{CheckResult, Outcome, Summary};
