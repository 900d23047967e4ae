//! Test code shared by the ws workspace's suites and benchmarks, written
//! once (not published):
//!
//! - [`attacker`]: the raw hostile peer, its attacks on a server (any
//!   driver's, through [`attacker::Victim`]) and on a client (any driver's,
//!   through [`attacker::ClientDriver`]), and the macros that make one test
//!   per attack: [`server_attacks!`] and [`client_attacks!`];
//! - [`alloc`]: the counting global allocator (allocation calls and heap
//!   growth, per thread), declared in a test binary with
//!   [`counting_allocator!`];
//! - [`pair`]: a client and a server `Connection` linked in memory, and
//!   [`pair::pump`];
//! - [`echo_client`]: the blocking core client of the zero-allocation
//!   tests, and their measurement
//!   ([`echo_client::steady_state_allocations`]);
//! - [`idle`]: the idle-memory tests' raw client and heap readings;
//! - [`interop`]: the Python side of the interop tests (the scripts'
//!   directory, the virtualenv's python);
//! - [`reach`]: the proxy and redirect tests of every client driver
//!   (real proxies from `pproxy`, hostile fake proxies, a redirecting
//!   site), made per driver by [`reach_tests!`];
//! - [`wait::wait_until`]: the bounded poll for a condition no event
//!   announces;
//! - [`bad_request`]: the invalid upgrade requests every client must refuse
//!   before connecting, and the silent listener that shows it did.
//!
//! Used as a dev-dependency. Everything here may panic: a failed
//! assertion or a socket error fails the test that called it.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap fails the calling test"
)]

pub mod alloc;
pub mod attacker;
pub mod bad_request;
pub mod echo_client;
pub mod idle;
pub mod interop;
pub mod pair;
pub mod reach;
pub mod wait;
