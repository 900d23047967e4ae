//! The byte pipe under one connection: a plain TCP stream or rustls over
//! one. Non-blocking throughout: every call may answer `WouldBlock`.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

/// A connection's transport.
pub(crate) enum Transport {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://` (either role).
    Tls(Box<TlsStream>),
}

/// rustls over a non-blocking TCP stream.
pub(crate) struct TlsStream {
    sock: TcpStream,
    tls: rustls::Connection,
    /// `read_tls` saw the end of the TCP stream.
    eof: bool,
    /// Shut the TCP write side once the queued TLS records are out.
    shutdown_after_flush: bool,
}

impl Transport {
    /// TLS over `sock`.
    pub(crate) fn tls(sock: TcpStream, tls: rustls::Connection) -> Transport {
        Transport::Tls(Box::new(TlsStream {
            sock,
            tls,
            eof: false,
            shutdown_after_flush: false,
        }))
    }

    /// The TCP stream (to register with the poll).
    pub(crate) fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.sock,
        }
    }

    /// Mutable TCP stream (registration needs `&mut`).
    pub(crate) fn socket_mut(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.sock,
        }
    }

    /// Whether this is a TLS transport.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Reads application bytes. `Ok(0)` is the end of the stream.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => loop {
                match s.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => return r,
                }
            },
            Transport::Tls(t) => t.read(buf),
        }
    }

    /// Writes application bytes; returns how many were taken (at least one)
    /// or `WouldBlock`.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        match self {
            Transport::Plain(s) => loop {
                match s.write(data) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => return r,
                }
            },
            Transport::Tls(t) => t.write(data),
        }
    }

    /// Writes application bytes from several slices in order (one `writev`
    /// on a plain socket; TLS takes the first non-empty slice); returns how
    /// many were taken (at least one) or `WouldBlock`.
    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => {
                if bufs.iter().all(|b| b.is_empty()) {
                    return Ok(0);
                }
                loop {
                    match s.write_vectored(bufs) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => return r,
                    }
                }
            }
            Transport::Tls(_) => match bufs.iter().find(|b| !b.is_empty()) {
                Some(first) => self.write(first),
                None => Ok(0),
            },
        }
    }

    /// Pushes out anything the transport itself still holds (TLS records, a
    /// deferred TCP shutdown). `WouldBlock` when the socket is full.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush(),
        }
    }

    /// Ends the write side: TCP FIN (after a TLS `close_notify`, once the
    /// queued records are out).
    pub(crate) fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => shutdown(s),
            Transport::Tls(t) => {
                t.tls.send_close_notify();
                t.shutdown_after_flush = true;
                t.flush()
            }
        }
    }
}

/// `shutdown(Write)`, where a peer that is already gone is not an error.
fn shutdown(s: &TcpStream) -> io::Result<()> {
    match s.shutdown(Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        r => r,
    }
}

impl TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.eof {
                        return Ok(0);
                    }
                }
                Err(e) => return Err(e),
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // Try to get the alert out before giving up.
                let _ = self.tls.write_tls(&mut self.sock);
                return Err(match ws_net::tls::untrusted_hint(&e) {
                    Some(hint) => {
                        io::Error::new(io::ErrorKind::InvalidData, format!("{e}; {hint}"))
                    }
                    None => io::Error::new(io::ErrorKind::InvalidData, e),
                });
            }
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Hold at most one batch of records: take new plaintext only once the
        // previous records are on the socket.
        self.flush_records()?;
        let n = self.tls.writer().write(data)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.flush_records() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_records()?;
        if self.shutdown_after_flush {
            self.shutdown_after_flush = false;
            shutdown(&self.sock)?;
        }
        Ok(())
    }

    fn flush_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
