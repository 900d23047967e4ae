//! rustls configurations for every driver, built in one place.
//!
//! Every configuration here uses the *ring* provider explicitly
//! (`builder_with_provider`), never the process-wide default, so no feature
//! unification elsewhere in a build (say, another crate enabling
//! `aws-lc-rs`) can make provider selection panic. Protocol versions are
//! rustls's safe defaults (TLS 1.2 and 1.3), and ALPN offers/selects
//! `http/1.1`, the protocol a WebSocket upgrade runs over.
//!
//! ```
//! use ws_net::tls;
//!
//! // A server certificate made now, and a client that trusts only it.
//! let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
//! let server = tls::server_config_from_pem(
//!     ck.cert.pem().as_bytes(),
//!     ck.signing_key.serialize_pem().as_bytes(),
//! )?;
//! let roots = tls::certs_from_pem(ck.cert.pem().as_bytes())?;
//! let client = tls::client_config(rustls::RootCertStore::empty(), &roots)?;
//! let session = tls::client_connection(client, "localhost")?;
//! assert!(session.is_handshaking());
//! assert_eq!(server.alpn_protocols, vec![b"http/1.1".to_vec()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why a TLS configuration or session could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The material given is unusable: malformed PEM, no `CERTIFICATE` or
    /// no private key in it, a root certificate the store refuses, a server
    /// name that is neither a DNS name nor an address.
    Config(String),
    /// rustls refused the configuration or the session.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Config(m) => f.write_str(m),
            TlsError::Rustls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Rustls(e) => Some(e),
            TlsError::Config(_) => None,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

/// The ALPN protocol every configuration offers (client) or selects
/// (server).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The *ring* crypto provider every configuration here is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The Mozilla root program, from the `webpki-roots` crate.
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The platform's trust store (the default roots of every client in the
/// workspace), from the `rustls-native-certs` crate: on Linux and the BSDs
/// the system bundle (`SSL_CERT_FILE` / `SSL_CERT_DIR` override it, as for
/// OpenSSL), on macOS the keychains' trusted roots, on Windows the system
/// certificate store. Loaded once per process and then shared.
///
/// Why `rustls-native-certs` and not `rustls-platform-verifier`: the
/// platform's roots become a [`RootCertStore`] that goes through the same
/// [`client_config`] as the bundled webpki roots and the extra PEM roots, on
/// the same explicit *ring* provider, so every driver and every root choice
/// verifies certificates the same way (webpki), extra roots included. The
/// platform verifier replaces the verifier instead (better fidelity on
/// macOS, Windows and Android: revocation, per-certificate trust settings),
/// but on Linux it reads the same files, and how it combines with extra
/// roots differs by platform.
///
/// Fails when the store holds no usable certificate (e.g. no CA bundle is
/// installed): the message says how to add roots or pick the bundled ones.
/// Certificates the store holds but webpki cannot use are skipped.
pub fn platform_roots() -> Result<RootCertStore, TlsError> {
    static ROOTS: std::sync::OnceLock<Result<RootCertStore, String>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in found.errors.iter().take(5) {
                log::debug!("ws-net: platform trust store: {e}");
            }
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "it is empty".to_string(), |e| e.to_string());
                return Err(format!(
                    "no trusted root certificate could be loaded from the platform's trust store ({why}); \
                     install the system CA bundle (e.g. the ca-certificates package) or point SSL_CERT_FILE at one, \
                     add a root (PEM) to the client's TLS options, or use the bundled webpki roots"
                ));
            }
            Ok(store)
        })
        .clone()
        .map_err(TlsError::Config)
}

/// A client configuration trusting the platform's trust store
/// ([`platform_roots`]) plus `extra` certificates. When the platform's store
/// cannot be loaded (no CA bundle on the machine) but `extra` is not empty,
/// the extra certificates alone are trusted (the failure is logged at debug
/// level); with no extra certificate, the failure is the error.
pub fn platform_client_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, TlsError> {
    match platform_roots() {
        Ok(roots) => client_config(roots, extra),
        Err(e) if !extra.is_empty() => {
            log::debug!("ws-net: trusting the extra roots only: {e}");
            client_config(RootCertStore::empty(), extra)
        }
        Err(e) => Err(e),
    }
}

/// What to tell the user about a TLS failure that an added root would fix:
/// for a certificate whose issuer is not trusted (or self-signed), how to
/// trust it. `None` for other failures.
pub fn untrusted_hint(e: &rustls::Error) -> Option<&'static str> {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature)
        | rustls::Error::InvalidCertificate(C::Other(_)) => Some(
            "the server's certificate is not signed by a trusted root (the platform's trust \
             store by default): add its CA certificate (PEM) to the client's TLS options \
             (add_root_pem), or install it into the system's trust store",
        ),
        _ => None,
    }
}

/// Every `CERTIFICATE` in a PEM text; fails when the PEM is malformed or
/// holds none.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Config("no CERTIFICATE in the PEM text".into()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM text.
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Config(format!("private key: {e}")))
}

/// A client configuration trusting `roots` plus `extra` certificates (e.g. a
/// self-signed test certificate; pass [`RootCertStore::empty`] to trust
/// only those, [`platform_roots()`] for the machine's store, or
/// [`webpki_roots()`] for the bundled Mozilla roots).
pub fn client_config(
    mut roots: RootCertStore,
    extra: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, TlsError> {
    for c in extra {
        roots
            .add(c.clone())
            .map_err(|e| TlsError::Config(format!("extra root certificate: {e}")))?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// A server configuration presenting `chain` (leaf first) with `key`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// A server configuration from a PEM certificate chain (leaf first) and a
/// PEM private key.
pub fn server_config_from_pem(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(certs_from_pem(cert_chain_pem)?, key_from_pem(key_pem)?)
}

/// The TLS server name for a URL's host ([`WsUrl::host`](crate::url::WsUrl::host):
/// a DNS name, or an address without brackets).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string())
        .map_err(|e| TlsError::Config(format!("server name {host:?}: {e}")))
}

/// A client session for `host`: the SNI name sent (for a DNS name) and the
/// name the server's certificate must match.
pub fn client_connection(
    config: Arc<ClientConfig>,
    host: &str,
) -> Result<rustls::ClientConnection, TlsError> {
    Ok(rustls::ClientConnection::new(config, server_name(host)?)?)
}

/// Configurations that turn security checks off, for testing against
/// servers with certificates nobody vouches for. Never use them to reach a
/// server over a network you do not control.
pub mod danger {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

    use super::{provider, TlsError, ALPN_HTTP11};

    /// A client configuration that accepts any server certificate, for any
    /// name (`wsx connect --insecure`). The handshake signatures are still
    /// verified, so the session is encrypted to whoever holds the presented
    /// key; only the identity check is skipped, which means anyone on the
    /// path can pose as the server.
    pub fn insecure_client_config() -> Result<Arc<ClientConfig>, TlsError> {
        let provider = provider();
        let verifier = Arc::new(AnyCertificate {
            provider: provider.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }

    /// Accepts every certificate; checks the handshake signatures.
    #[derive(Debug)]
    struct AnyCertificate {
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cert {
        pem: String,
        key_pem: String,
    }

    fn cert() -> Cert {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        match rcgen::generate_simple_self_signed(names) {
            Ok(ck) => Cert {
                pem: ck.cert.pem(),
                key_pem: ck.signing_key.serialize_pem(),
            },
            Err(e) => panic!("rcgen: {e}"),
        }
    }

    /// Runs a full handshake in memory between the two configurations.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        name: &str,
    ) -> Result<Option<Vec<u8>>, rustls::Error> {
        let mut c = client_connection(client, name).map_err(|e| match e {
            TlsError::Rustls(e) => e,
            TlsError::Config(m) => rustls::Error::General(m),
        })?;
        let mut s = rustls::ServerConnection::new(server)?;
        // Each round moves every pending byte both ways; a handshake needs
        // two or three.
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf)
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd)
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf)
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd)
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(c.alpn_protocol().map(<[u8]>::to_vec));
            }
        }
        Err(rustls::Error::General("handshake did not finish".into()))
    }

    #[test]
    fn a_client_trusting_the_certificate_completes_a_handshake_with_alpn() {
        let c = cert();
        let server =
            server_config_from_pem(c.pem.as_bytes(), c.key_pem.as_bytes()).expect("server");
        let roots = certs_from_pem(c.pem.as_bytes()).expect("pem");
        let client = client_config(RootCertStore::empty(), &roots).expect("client");
        let alpn = handshake(client.clone(), server.clone(), "localhost").expect("handshake");
        assert_eq!(alpn.as_deref(), Some(ALPN_HTTP11));
        // An address works as the name too.
        assert!(handshake(client, server, "127.0.0.1").is_ok());
    }

    #[test]
    fn the_public_roots_do_not_trust_a_self_signed_certificate() {
        let c = cert();
        let server =
            server_config_from_pem(c.pem.as_bytes(), c.key_pem.as_bytes()).expect("server");
        // The platform's store is whatever the machine has: loaded, or a
        // message saying how to add roots.
        match platform_roots() {
            Ok(store) => assert!(!store.is_empty()),
            Err(e) => assert!(e.to_string().contains("bundled webpki roots"), "{e}"),
        }
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(untrusted_hint(&unknown).is_some_and(|h| h.contains("add_root_pem")));
        assert_eq!(untrusted_hint(&rustls::Error::HandshakeNotComplete), None);
        let client = client_config(webpki_roots(), &[]).expect("client");
        assert!(!webpki_roots().is_empty());
        let err = handshake(client, server.clone(), "localhost").expect_err("untrusted");
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );
        // The insecure configuration accepts it, even for another name.
        let insecure = danger::insecure_client_config().expect("insecure");
        assert!(handshake(insecure, server, "other.example").is_ok());
    }

    #[test]
    fn bad_material_is_refused_with_a_clear_error() {
        let e = certs_from_pem(b"not pem").expect_err("no cert");
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let c = cert();
        assert!(
            key_from_pem(c.pem.as_bytes()).is_err(),
            "a certificate is not a key"
        );
        let e = server_config_from_pem(c.pem.as_bytes(), b"").expect_err("no key");
        assert!(e.to_string().contains("private key"), "{e}");
        let e = server_name("not a name").expect_err("bad name");
        assert!(matches!(e, TlsError::Config(_)), "{e:?}");
        assert!(server_name("::1").is_ok());
    }
}
