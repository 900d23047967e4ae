//! Socket set-up that `std` and `mio` do not offer: listen backlog,
//! `SO_REUSEPORT`, binding a source address before a non-blocking connect.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

/// A listening socket of a loop.
pub(crate) struct Listener {
    pub(crate) sock: mio::net::TcpListener,
    /// The server configuration of a `wss://` listener.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Retry accepting at this time (after an error such as `EMFILE`).
    pub(crate) retry_at: Option<Instant>,
    /// The accept budget ran out: accept again next iteration.
    pub(crate) carry: bool,
}

/// A non-blocking listener on `addr`. With `reuse_port`, several listeners
/// (one per loop) can share the address and the kernel spreads incoming
/// connections over them.
pub(crate) fn bind_listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> io::Result<std::net::TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if reuse_port {
        set_reuse_port(&sock)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

#[cfg(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
))]
fn set_reuse_port(sock: &Socket) -> io::Result<()> {
    sock.set_reuse_port(true)
}

#[cfg(not(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
)))]
fn set_reuse_port(_sock: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available",
    ))
}

/// Whether listeners can share an address with `SO_REUSEPORT` here.
pub(crate) const REUSE_PORT: bool = cfg!(all(
    unix,
    not(any(
        target_os = "solaris",
        target_os = "illumos",
        target_os = "cygwin"
    ))
));

/// Starts a non-blocking connect to `addr`, from `bind` when given. The
/// connection completes (or fails) later: the socket turns writable.
pub(crate) fn start_connect(
    addr: SocketAddr,
    bind: Option<IpAddr>,
) -> io::Result<mio::net::TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    if let Some(ip) = bind {
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || in_progress(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(sock.into()))
}

/// `EINPROGRESS`: a non-blocking connect has started.
#[cfg(unix)]
fn in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// `EINPROGRESS`: a non-blocking connect has started.
#[cfg(not(unix))]
fn in_progress(_e: &io::Error) -> bool {
    false
}
