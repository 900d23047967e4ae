//! TLS helpers: server certificates (files or self-signed) and client trust.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

/// A server configuration from PEM files.
pub fn server_from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let cert = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    ws_std::server_config_from_pem(&cert, &key).map_err(|e| e.to_string())
}

/// A server configuration with a certificate for localhost / 127.0.0.1 made
/// now. Its PEM is returned too, so a client can trust it (`--ca`).
pub fn server_self_signed() -> Result<(Arc<ServerConfig>, String), String> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    let pem = ck.cert.pem();
    let cfg =
        ws_std::server_config_from_pem(pem.as_bytes(), ck.signing_key.serialize_pem().as_bytes())
            .map_err(|e| e.to_string())?;
    Ok((cfg, pem))
}

/// A client configuration that accepts any certificate (`--insecure`). The
/// handshake signatures are still verified, so the session is encrypted to
/// whoever holds the presented key; only the identity check is skipped.
pub fn insecure_client() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate {
        provider: provider.clone(),
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        });
    match cfg {
        Ok(mut c) => {
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(c)
        }
        // The ring provider always supports the default versions.
        Err(e) => unreachable_config(e),
    }
}

fn unreachable_config(e: rustls::Error) -> Arc<ClientConfig> {
    eprintln!("wsx: cannot build a TLS configuration: {e}");
    std::process::exit(1)
}

#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
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
