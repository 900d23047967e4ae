//! `wsx connect --driver mio` (TEMPORARY until ws-mio lands).
use crate::opts::ConnectArgs;

/// Runs the mio client.
pub fn run(_a: &ConnectArgs, _opts: ws_std::ClientOptions) -> i32 {
    eprintln!("wsx: the mio driver is not available in this build; use --driver std");
    1
}
