//! How nodes reach each other's Raft port: plain TCP, or mutual TLS when `[tls]` is on. With
//! TLS each node presents its `[tls]` certificate both when it accepts and when it connects,
//! and checks the other end's against the cluster's CA (`[cluster] ca`): the Raft port
//! applies whatever log entries it is sent, users and grants included, so a peer is trusted
//! only for holding a certificate that CA signed. A connecting node also checks that the
//! certificate names the host it dialled.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The ALPN name of KalamDB's Raft traffic, so that neither end mistakes a PostgreSQL (or
/// other) TLS endpoint for a node.
const ALPN: &[u8] = b"kalamdb-raft";

/// The development CA published in `certs/`: anyone can sign a certificate with its key.
const SHIPPED_DEVELOPMENT_CA: &[u8] = include_bytes!("../../certs/ca.pem");

/// How long a connecting node has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream to or from another node, whichever transport carries it.
pub trait NodeStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> NodeStream for T {}

/// Why the cluster's TLS could not be set up from the configured files.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

/// The transport every connection between nodes uses.
#[derive(Clone, Default)]
pub enum Transport {
    /// Plain TCP: only for nodes that reach each other over loopback (the configuration
    /// refuses a Raft address off loopback without TLS).
    #[default]
    Plain,
    Tls(Arc<MutualTls>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Plain => "plain TCP",
            Transport::Tls(_) => "mutual TLS",
        })
    }
}

/// Both ends of mutual TLS between nodes.
pub struct MutualTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl Transport {
    /// Mutual TLS with this node's certificate chain and key, trusting certificates `ca`
    /// signed. The development CA in `certs/` is refused unless the Raft port is on loopback
    /// (`loopback_only`): its key is published, so it would admit anyone.
    pub fn mutual_tls(
        cert: &Path,
        key: &Path,
        ca: &Path,
        loopback_only: bool,
    ) -> Result<Transport, TransportError> {
        let failed = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
            TransportError(format!("{what} {}: {e}", path.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| failed("cannot read the certificate chain", cert, &e))?;
        if chain.is_empty() {
            return Err(failed("no certificate in", cert, &"empty PEM"));
        }
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| failed("cannot read the key", key, &e))?;
        let mut roots = RootCertStore::empty();
        let authorities = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| failed("cannot read the CA certificate", ca, &e))?;
        let shipped = CertificateDer::pem_slice_iter(SHIPPED_DEVELOPMENT_CA)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default();
        if !loopback_only && authorities.iter().any(|a| shipped.contains(a)) {
            return Err(failed(
                "refusing a Raft address off loopback with the development CA published in certs/",
                ca,
                &"anyone can sign a node certificate with its key; use your own CA (certs/gen-certs.sh makes one)",
            ));
        }
        for authority in authorities {
            roots
                .add(authority)
                .map_err(|e| failed("unusable CA certificate in", ca, &e))?;
        }
        if roots.is_empty() {
            return Err(failed("no CA certificate in", ca, &"empty PEM"));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_error = |e: rustls::Error| TransportError(e.to_string());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TransportError(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key_der.clone_key())
            .map_err(|e| failed("certificate and key do not match:", cert, &e))?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der)
            .map_err(|e| failed("certificate and key do not match:", cert, &e))?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Transport::Tls(Arc::new(MutualTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })))
    }

    /// Connects to the node at `addr` (`host:port`), failing after `timeout`.
    pub async fn dial(&self, addr: &str, timeout: Duration) -> io::Result<Box<dyn NodeStream>> {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr}"));
        let connecting = async {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            match self {
                Transport::Plain => Ok(Box::new(tcp) as Box<dyn NodeStream>),
                Transport::Tls(tls) => {
                    let stream = tls.connector.connect(server_name(addr)?, tcp).await?;
                    speaks_raft(stream.get_ref().1.alpn_protocol())?;
                    Ok(Box::new(stream) as Box<dyn NodeStream>)
                }
            }
        };
        tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| timed_out())?
    }

    /// Takes a connection another node made to this one's Raft port.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<Box<dyn NodeStream>> {
        let _ = tcp.set_nodelay(true);
        match self {
            Transport::Plain => Ok(Box::new(tcp)),
            Transport::Tls(tls) => {
                let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(tcp))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                speaks_raft(stream.get_ref().1.alpn_protocol())?;
                Ok(Box::new(stream))
            }
        }
    }
}

/// rustls goes on when the other end names no protocol: a node requires it to name ours.
fn speaks_raft(negotiated: Option<&[u8]>) -> io::Result<()> {
    if negotiated == Some(ALPN) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the other end did not negotiate KalamDB's Raft protocol (ALPN kalamdb-raft)",
        ))
    }
}

/// The name a node's certificate must carry: the host part of `addr`, an IP address or a
/// DNS name.
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a host name or address: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_must_name_the_host_it_is_dialled_at() {
        assert_eq!(
            server_name("127.0.0.1:7001").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            server_name("[::1]:7001").unwrap(),
            ServerName::try_from("::1").unwrap()
        );
        assert_eq!(
            server_name("node-2.example:7001").unwrap(),
            ServerName::try_from("node-2.example").unwrap()
        );
        assert!(server_name("bad host:7001").is_err());
    }
}
