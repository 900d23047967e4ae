//! rustls configurations for this driver: thin forms of [`ws_net::tls`], the
//! builders every driver of the workspace shares (explicit *ring* provider,
//! never the process-wide default, so no feature unification elsewhere can
//! make provider selection panic; ALPN `http/1.1`).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::Error;

/// The *ring* crypto provider used by every configuration built here.
pub fn provider() -> Arc<CryptoProvider> {
    ws_net::tls::provider()
}

/// A client configuration trusting the platform's trust store
/// ([`ws_net::tls::platform_roots`]): the default of `wss://` connections.
pub fn default_client_config() -> Result<Arc<ClientConfig>, Error> {
    Ok(ws_net::tls::platform_client_config(&[])?)
}

/// A client configuration trusting the bundled Mozilla root program
/// (`webpki-roots`).
pub fn webpki_client_config() -> Result<Arc<ClientConfig>, Error> {
    Ok(ws_net::tls::client_config(
        ws_net::tls::webpki_roots(),
        &[],
    )?)
}

/// A client configuration trusting exactly `roots`.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, Error> {
    Ok(ws_net::tls::client_config(roots, &[])?)
}

/// A client configuration trusting only these DER certificates (e.g. a
/// self-signed test certificate).
pub fn client_config_trusting(
    certs: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, Error> {
    Ok(ws_net::tls::client_config(RootCertStore::empty(), certs)?)
}

/// A server configuration presenting `chain` (leaf first) with `key`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    Ok(ws_net::tls::server_config(chain, key)?)
}

/// A server configuration from a PEM certificate chain (leaf first) and a
/// PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config_from_pem(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, Error> {
    Ok(ws_net::tls::server_config_from_pem(
        cert_chain_pem,
        key_pem,
    )?)
}
