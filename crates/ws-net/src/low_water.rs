//! Waking a reader once per large frame instead of once per piece of it.
//!
//! A 1 MiB frame reaches a socket as many pieces (loopback hands them over in
//! 64 KiB segments, a real network in smaller ones), and a driver that reads
//! whatever is there wakes up, reads and sleeps again for each piece: about
//! 14 reads, 6 waits and 5 context switches per 1 MiB message, measured on
//! the peers benchmark. Nothing can be delivered before the frame is
//! complete, so those wake-ups buy nothing. After a read finds the socket
//! empty in the middle of a large frame, [`LowWater::after_empty_read`] sets
//! the socket's receive low-water mark (`SO_RCVLOWAT`, Linux) to the rest of
//! the frame (at most [`MAX`]): the kernel then reports the socket readable
//! once that much is queued, the end of the stream, an error, or when its
//! receive window is nearly full (the kernel never lets a low-water mark
//! stall a connection). Between frames the mark goes back to one byte.
//!
//! Timers must see what arrived: a slow sender's pieces that sit under the
//! mark are not silence. A driver calls [`LowWater::reset`] before it runs
//! the core's timers and reads whatever is queued first.
//!
//! Only for plain TCP sockets: under TLS the bytes still to come on the socket
//! are not the frame's, as the TLS layer may hold part of a record already.
//! Elsewhere than Linux the mark is never raised.

use std::io;
use std::os::fd::BorrowedFd;

/// Frames with fewer missing bytes than this are read as they come (one
/// more wake-up costs less than the two calls that set and clear a mark).
pub const MIN: usize = 64 * 1024;
/// The highest mark set: a larger frame wakes the reader once per this much.
pub const MAX: usize = 1 << 20;

/// The receive low-water mark a driver keeps on one plain TCP socket: raised
/// or at the kernel's default of one byte. One byte of state (a driver keeps
/// one per connection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LowWater {
    raised: bool,
}

impl LowWater {
    /// After a read found `sock` empty, with `missing` payload bytes of the
    /// frame being received still to come
    /// (`ws_proto::Connection::frame_remaining`): raises the mark to the rest
    /// of a large frame, or lowers it back to one byte between frames.
    pub fn after_empty_read(&mut self, sock: BorrowedFd<'_>, missing: usize) {
        if missing >= MIN {
            // Each frame's rest differs: the call is made even when raised.
            self.raised = set(sock, missing.min(MAX)).is_ok();
        } else if self.raised {
            self.reset(sock);
        }
    }

    /// Lowers the mark back to one byte (before the core's timers run, so
    /// that a read sees whatever arrived). Returns whether it was raised: the
    /// driver then reads what is queued before it runs the timers.
    pub fn reset(&mut self, sock: BorrowedFd<'_>) -> bool {
        if !self.raised {
            return false;
        }
        self.raised = false;
        if let Err(e) = set(sock, 1) {
            log::debug!("SO_RCVLOWAT back to 1 failed: {e}");
        }
        true
    }

    /// Whether the mark is raised.
    pub fn is_raised(&self) -> bool {
        self.raised
    }
}

/// Waits until `sock` is readable as its mark says (the mark's worth of bytes queued, the end
/// of the stream or an error), at most `timeout` (`None`: no limit). Returns whether it is.
///
/// For a blocking reader: a one-byte `peek` ignores the mark (the kernel waits for the smaller
/// of the mark and the length asked for), `poll` honours it. Elsewhere than Linux (where the
/// mark is never raised) it answers at once that the socket may be read.
pub fn wait_readable(
    sock: BorrowedFd<'_>,
    timeout: Option<std::time::Duration>,
) -> io::Result<bool> {
    poll_in(sock, timeout)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn poll_in(sock: BorrowedFd<'_>, timeout: Option<std::time::Duration>) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let ms = timeout.map_or(-1, |t| {
        // Rounded up: a wait shorter than asked would wake before the deadline.
        let ms = t.as_nanos().div_ceil(1_000_000);
        libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
    });
    let mut fds = [libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    loop {
        // SAFETY: `fds` is a live array of one `pollfd` and the count passed is its length; the
        // descriptor is borrowed for this call, so it is open.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn poll_in(_sock: BorrowedFd<'_>, _timeout: Option<std::time::Duration>) -> io::Result<bool> {
    Ok(true)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set(sock: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the descriptor is borrowed for this call, so it is open; the
    // option value points to a live `c_int` and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set(_sock: BorrowedFd<'_>, _bytes: usize) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[cfg(target_os = "linux")]
    fn mark(s: &TcpStream) -> i32 {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        use std::os::fd::AsRawFd;
        // SAFETY: test helper: an open socket, a live c_int and its size.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_mut(&mut v).cast::<libc::c_void>(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        v
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn raised_for_the_rest_of_a_large_frame_and_lowered_between_frames() {
        let (_a, b) = pair();
        let mut lw = LowWater::default();
        lw.after_empty_read(b.as_fd(), MIN - 1);
        assert!(!lw.is_raised());
        assert_eq!(mark(&b), 1);
        lw.after_empty_read(b.as_fd(), 300_000);
        assert!(lw.is_raised());
        assert_eq!(mark(&b), 300_000);
        lw.after_empty_read(b.as_fd(), 50 << 20);
        assert_eq!(mark(&b), MAX as i32);
        lw.after_empty_read(b.as_fd(), 0);
        assert!(!lw.is_raised());
        assert_eq!(mark(&b), 1);
        lw.after_empty_read(b.as_fd(), 200_000);
        assert!(lw.reset(b.as_fd()));
        assert!(!lw.reset(b.as_fd()));
        assert_eq!(mark(&b), 1);
    }

    /// The kernel still hands out what is queued once the writer stops
    /// (end of stream), below the mark: a raised mark never loses bytes.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_end_of_the_stream_wakes_a_reader_below_the_mark() {
        let (mut a, mut b) = pair();
        let mut lw = LowWater::default();
        lw.after_empty_read(b.as_fd(), 500_000);
        a.write_all(&[7u8; 1000]).unwrap();
        drop(a);
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 1000);
    }

    /// A blocking reader's wait honours the mark: bytes below it do not wake it, the mark's
    /// worth does, and so do the bytes below it once the mark is lowered.
    #[cfg(target_os = "linux")]
    #[test]
    fn wait_readable_honours_the_mark() {
        let (mut a, b) = pair();
        let mut lw = LowWater::default();
        lw.after_empty_read(b.as_fd(), 100_000);
        a.write_all(&[1u8; 1000]).unwrap();
        let short = Some(Duration::from_millis(50));
        assert!(
            !wait_readable(b.as_fd(), short).unwrap(),
            "1,000 bytes under a 100,000-byte mark"
        );
        assert!(lw.reset(b.as_fd()));
        assert!(wait_readable(b.as_fd(), Some(Duration::from_secs(10))).unwrap());
        lw.after_empty_read(b.as_fd(), 100_000);
        // The rest of the mark: readable (bounded wait, the kernel has it all at once).
        a.write_all(&[2u8; 99_000]).unwrap();
        assert!(wait_readable(b.as_fd(), Some(Duration::from_secs(10))).unwrap());
    }
}
