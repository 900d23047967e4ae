//! Glue shared by the workspace's drivers (`ws-std`, `ws-mio`, the CLI), written
//! once so that the drivers cannot drift apart. The sans-IO core (`ws-proto`)
//! never depends on this crate.
//!
//! Today: [`LogLimiter`], which keeps a repeated warning (say, `accept` failing
//! with "too many open files" on every retry) from flooding the log.

mod log_limit;

pub use log_limit::LogLimiter;
