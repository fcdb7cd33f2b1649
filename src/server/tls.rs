//! TLS: loads the configured certificate chain and key into a rustls acceptor.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::ServerError;

pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// The PEM chain, which SCRAM-SHA-256-PLUS channel binding hashes.
    pub cert_pem: Vec<u8>,
}

/// The development key published in `certs/`: it protects nothing, since anyone has it.
const SHIPPED_DEVELOPMENT_KEY: &[u8] = include_bytes!("../../certs/server.key");

/// Loads the certificate chain and key. The published development key is refused unless the
/// server listens on loopback only, as the shipped root password is.
pub fn load(cert: &Path, key: &Path, loopback_only: bool) -> Result<Tls, ServerError> {
    let tls_error = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        ServerError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let cert_pem =
        std::fs::read(cert).map_err(|e| tls_error("cannot read [tls] cert", cert, &e))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error("invalid certificate in", cert, &e))?;
    if chain.is_empty() {
        return Err(tls_error("no certificate in", cert, &"empty PEM"));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error("invalid [tls] key", key, &e))?;
    if !loopback_only && is_shipped_development_key(&key_der) {
        return Err(ServerError::Tls(format!(
            "refusing to listen off loopback with the development TLS key published in certs/ ({}): anyone can impersonate this server with it; configure your own [tls] cert and key (certs/gen-certs.sh makes a new pair)",
            key.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| ServerError::Tls(format!("certificate and key do not match: {e}")))?;
    // Needed for PostgreSQL 17's direct TLS negotiation.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_pem,
    })
}

fn is_shipped_development_key(key: &PrivateKeyDer<'_>) -> bool {
    PrivateKeyDer::from_pem_slice(SHIPPED_DEVELOPMENT_KEY)
        .is_ok_and(|shipped| shipped.secret_der() == key.secret_der())
}
