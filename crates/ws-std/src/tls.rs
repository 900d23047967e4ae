//! TLS options and the blocking TLS handshake. The rustls configurations
//! themselves are built by [`ws_net::tls`] (explicit *ring* provider, never
//! the process-wide default), shared with every other driver.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use ws_net::tls::TlsError;

use crate::error::{Error, Timeout};

impl From<TlsError> for Error {
    /// Unusable material is [`Error::TlsConfig`]; what rustls refuses is
    /// [`Error::Tls`].
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Rustls(e) => Error::Tls(e),
            other => Error::TlsConfig(other.to_string()),
        }
    }
}

/// Which certificates a `wss://` client trusts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Roots {
    /// The platform's trust store ([`ws_net::tls::platform_roots`]; default).
    Platform,
    /// The Mozilla root program bundled from the `webpki-roots` crate.
    WebPki,
    /// Exactly this store.
    Custom(RootCertStore),
}

/// TLS settings of a `wss://` client: trusted roots, extra trusted
/// certificates, or a complete rustls [`ClientConfig`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsClientOptions {
    /// The root store (default [`Roots::Platform`]).
    pub roots: Roots,
    /// Certificates trusted in addition to the roots (e.g. a self-signed
    /// test certificate).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// A complete configuration; when set, `roots` and `extra_roots` are
    /// ignored. Build it with your own provider choice.
    pub config: Option<Arc<ClientConfig>>,
}

impl Default for TlsClientOptions {
    fn default() -> Self {
        TlsClientOptions {
            roots: Roots::Platform,
            extra_roots: Vec::new(),
            config: None,
        }
    }
}

impl TlsClientOptions {
    /// Trusts the bundled webpki roots (Mozilla's program) instead of the
    /// platform's store.
    pub fn webpki_roots(mut self) -> Self {
        self.roots = Roots::WebPki;
        self
    }

    /// Trusts exactly this root store instead of the platform's.
    pub fn root_store(mut self, store: RootCertStore) -> Self {
        self.roots = Roots::Custom(store);
        self
    }

    /// Also trusts this DER-encoded certificate.
    pub fn add_root_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(CertificateDer::from(der.into()));
        self
    }

    /// Also trusts every `CERTIFICATE` in this PEM text; fails when there is
    /// none or the PEM is malformed.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.extra_roots.extend(ws_net::tls::certs_from_pem(pem)?);
        Ok(self)
    }

    /// Uses this complete rustls configuration.
    pub fn config(mut self, config: Arc<ClientConfig>) -> Self {
        self.config = Some(config);
        self
    }

    /// The rustls configuration to connect with (built by
    /// [`ws_net::tls::client_config`]).
    pub(crate) fn build(&self) -> Result<Arc<ClientConfig>, Error> {
        if let Some(c) = &self.config {
            return Ok(c.clone());
        }
        let store = match &self.roots {
            Roots::Platform => return Ok(ws_net::tls::platform_client_config(&self.extra_roots)?),
            Roots::WebPki => ws_net::tls::webpki_roots(),
            Roots::Custom(s) => s.clone(),
        };
        Ok(ws_net::tls::client_config(store, &self.extra_roots)?)
    }
}

/// A rustls server configuration from a PEM certificate chain and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1), with the *ring* provider
/// ([`ws_net::tls::server_config_from_pem`]).
pub fn server_config_from_pem(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, Error> {
    Ok(ws_net::tls::server_config_from_pem(
        cert_chain_pem,
        key_pem,
    )?)
}

/// A rustls server configuration from DER certificates and key, with the
/// *ring* provider ([`ws_net::tls::server_config`]).
pub fn server_config_from_der(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    Ok(ws_net::tls::server_config(cert_chain, key)?)
}

/// A client TLS session for `host` (the SNI name and the name verified).
pub(crate) fn client_session(
    config: Arc<ClientConfig>,
    host: &str,
) -> Result<rustls::Connection, Error> {
    let conn = ws_net::tls::client_connection(config, host)?;
    Ok(rustls::Connection::Client(conn))
}

/// A server TLS session.
pub(crate) fn server_session(config: Arc<ServerConfig>) -> Result<rustls::Connection, Error> {
    let conn = rustls::ServerConnection::new(config).map_err(Error::Tls)?;
    Ok(rustls::Connection::Server(conn))
}

/// Runs the TLS handshake on `sock` until it completes, fails or `deadline`
/// passes. Socket timeouts are restored to none afterwards.
pub(crate) fn handshake(
    sock: &TcpStream,
    tls: &mut rustls::Connection,
    deadline: Instant,
) -> Result<(), Error> {
    let result = handshake_inner(sock, tls, deadline);
    let restore = sock
        .set_read_timeout(None)
        .and_then(|()| sock.set_write_timeout(None));
    if result.is_err() {
        // Best effort: the peer learns of the failure from the alert.
        let _ = sock.shutdown(Shutdown::Both);
    }
    result?;
    restore.map_err(Error::Io)
}

/// The time left until `deadline` (at least 1 ms, a usable socket timeout),
/// or the `timeout` error once it has passed.
pub(crate) fn time_left(deadline: Instant, timeout: Timeout) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(Error::Timeout(timeout))
    } else {
        Ok(left.max(Duration::from_millis(1)))
    }
}

fn handshake_inner(
    sock: &TcpStream,
    tls: &mut rustls::Connection,
    deadline: Instant,
) -> Result<(), Error> {
    let mut io: &TcpStream = sock;
    let remaining = || time_left(deadline, Timeout::Tls);
    // Every round trip either makes progress or hits the deadline.
    loop {
        while tls.wants_write() {
            sock.set_write_timeout(Some(remaining()?))
                .map_err(Error::Io)?;
            tls.write_tls(&mut io).map_err(tls_io_error)?;
        }
        if !tls.is_handshaking() {
            io.flush().map_err(Error::Io)?;
            return Ok(());
        }
        sock.set_read_timeout(Some(remaining()?))
            .map_err(Error::Io)?;
        let mut buf = [0u8; 4096];
        let n = match io.read(&mut buf) {
            Ok(0) => {
                return Err(Error::ConnectionLost {
                    source: Some(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed the connection during the TLS handshake",
                    )),
                })
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(tls_io_error(e)),
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            if tls.read_tls(&mut data).map_err(Error::Io)? == 0 {
                break;
            }
            if let Err(e) = tls.process_new_packets() {
                // Send the alert rustls queued, then report.
                let _ = sock.set_write_timeout(Some(Duration::from_millis(100)));
                let _ = tls.write_tls(&mut io);
                return Err(Error::Tls(e));
            }
        }
    }
}

fn tls_io_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(Timeout::Tls),
        _ => Error::from_io(e),
    }
}
