//! `wsx serve --driver mio` (TEMPORARY until ws-mio lands).
use std::sync::Arc;

use crate::opts::ServeArgs;

/// Runs the mio server.
pub fn run(_a: &ServeArgs, _tls: Option<Arc<rustls::ServerConfig>>) -> i32 {
    crate::serve::fail("the mio driver is not available in this build; use --driver std")
}
