//! The size of a connection: every open connection of a server holds one,
//! idle or not, so what only the handshake, the closing handshake, keepalive,
//! extensions or a busy connection need is boxed or shared (the
//! configuration is an `Arc`), and an idle connection keeps only this.
//! Measured at 640 bytes on 64-bit targets (1,680 before the layout was
//! slimmed down); a field added without need shows up here.

use std::mem::size_of;

use ws_proto::Connection;

/// The bound on `size_of::<Connection>()` on 64-bit targets.
const MAX_CONNECTION_SIZE: usize = 704;

#[test]
#[cfg(target_pointer_width = "64")]
fn a_connection_is_small() {
    let size = size_of::<Connection>();
    assert!(
        size <= MAX_CONNECTION_SIZE,
        "size_of::<Connection>() is {size} bytes (bound {MAX_CONNECTION_SIZE})"
    );
    // Not vacuous: the receive and transmit state alone are several hundred bytes.
    assert!(size >= 256, "{size}");
}
