//! TLS for wsx: server certificates (files or self-signed) and client trust.
//! Every configuration is built by [`ws_net::tls`], the builders the drivers
//! share.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};

use crate::opts::TlsClientArgs;

/// A server configuration from PEM files.
pub fn server_from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let cert = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    ws_net::tls::server_config_from_pem(&cert, &key).map_err(|e| e.to_string())
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
    let cfg = ws_net::tls::server_config_from_pem(
        pem.as_bytes(),
        ck.signing_key.serialize_pem().as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    Ok((cfg, pem))
}

/// The client configuration `wsx connect` and `wsx bench` ask for, for every driver:
/// `--insecure` accepts any certificate
/// ([`ws_net::tls::danger::insecure_client_config`]); `--ca PEM` trusts the
/// platform's trust store plus the certificates in that file; neither leaves the
/// driver's default (the platform's trust store).
pub fn client(a: &TlsClientArgs) -> Result<Option<Arc<ClientConfig>>, String> {
    if a.insecure {
        return ws_net::tls::danger::insecure_client_config()
            .map(Some)
            .map_err(|e| format!("TLS: {e}"));
    }
    let Some(ca) = &a.ca else {
        return Ok(None);
    };
    let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    let certs = ws_net::tls::certs_from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
    ws_net::tls::platform_client_config(&certs)
        .map(Some)
        .map_err(|e| format!("{}: {e}", ca.display()))
}

/// What to do about a TLS error, for an error message: the certificate
/// options when the server's certificate was refused, nothing otherwise.
pub fn hint(error: &str) -> &'static str {
    if error.contains("certificate") || error.contains("UnknownIssuer") {
        " (the server's certificate is not trusted: pass its CA certificate with --ca FILE.pem, \
         or --insecure to skip the check when testing)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::hint;

    #[test]
    fn certificate_errors_get_the_fix_and_others_nothing() {
        assert!(hint("TLS error: invalid peer certificate: UnknownIssuer").contains("--ca"));
        assert!(hint("invalid peer certificate: Expired").contains("--insecure"));
        assert_eq!(hint("Connection refused (os error 111)"), "");
    }
}
