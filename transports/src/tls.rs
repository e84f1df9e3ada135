//! TLS for the client API and the peer port (rustls with ring, through
//! tonic): certificates, keys and CAs read from PEM and checked before
//! anything binds, and the tonic server and client settings built from
//! them.
//!
//! This module owns the PEM material and its checks. It never prints a
//! key: an error names the file and what is wrong with it, never its
//! contents, and `Debug` shows a key as `<redacted>`.
//!
//! Rules, decided here once:
//! - The API ([`ApiTls`]): a certificate and its key make the API serve
//!   TLS; a client CA as well makes it require a client certificate signed
//!   by that CA (mutual TLS). TLS does not replace the API token.
//! - The peer port ([`PeerTls`]): always mutual. Every agent serves its
//!   certificate, dials its peers over TLS presenting the same certificate
//!   as a client certificate, and verifies theirs against the CA. Peers are
//!   dialled by socket address, so the name a dialled peer's certificate
//!   must carry is fixed: [`DEFAULT_PEER_SERVER_NAME`] (`rumour-peer`) as a
//!   DNS subject alternative name, unless set otherwise. A peer certificate
//!   therefore needs that name, and, if it lists extended key usages, both
//!   server and client authentication.

use std::path::Path;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use zeroize::Zeroizing;

/// The name every peer certificate carries (as a DNS subject alternative
/// name) unless [`PeerTls::server_name`] says otherwise: peers are dialled
/// by address, so this is what a dialled peer's certificate is checked
/// against.
pub const DEFAULT_PEER_SERVER_NAME: &str = "rumour-peer";

/// How long a TLS handshake may take on an accepted connection before it
/// is dropped, so half-open handshakes do not pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which of the three PEM files an error is about, so that the caller can
/// name the flag or config key it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    /// The certificate (chain) served.
    Cert,
    /// Its private key.
    Key,
    /// The CA that the other side's certificate must be signed by.
    Ca,
}

/// Why TLS material was refused. The messages name the source (a file's
/// path) and never show what it holds.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No PEM `CERTIFICATE` block could be read from it.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// Which file (the certificate or the CA).
        file: TlsFile,
        /// Where it came from.
        path: String,
    },
    /// No PEM private key could be read from it.
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey {
        /// Where it came from.
        path: String,
    },
    /// The certificate is malformed, or the key does not belong to it.
    #[error("the key in {key} does not belong to the certificate in {cert}, or that certificate is malformed")]
    Mismatch {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
    },
    /// None of the CA's certificates can serve as a trust anchor.
    #[error("{path} holds no usable CA certificate")]
    BadCa {
        /// Where it came from.
        path: String,
    },
}

impl TlsError {
    /// The file the error is about (a mismatch is blamed on the key).
    pub fn file(&self) -> TlsFile {
        match self {
            TlsError::Read { file, .. } | TlsError::NoCertificate { file, .. } => *file,
            TlsError::NoKey { .. } | TlsError::Mismatch { .. } => TlsFile::Key,
            TlsError::BadCa { .. } => TlsFile::Ca,
        }
    }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        file,
        path: path.display().to_string(),
        source,
    })
}

/// PEM that holds at least one certificate block that decodes.
fn check_certificates(file: TlsFile, pem: &[u8], path: &str) -> Result<(), TlsError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(()),
        _ => Err(TlsError::NoCertificate {
            file,
            path: path.to_string(),
        }),
    }
}

/// A certificate (chain, leaf first) and its private key, in PEM, checked
/// to fit together. `Debug` never shows the key.
#[derive(Clone)]
pub struct TlsIdentity {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl TlsIdentity {
    /// From PEM text. `cert_from` and `key_from` name where each came from
    /// in errors (say, the file's path).
    pub fn from_pem(
        cert: Vec<u8>,
        cert_from: &str,
        key: Vec<u8>,
        key_from: &str,
    ) -> Result<TlsIdentity, TlsError> {
        let key = Zeroizing::new(key);
        check_certificates(TlsFile::Cert, &cert, cert_from)?;
        if PrivateKeyDer::from_pem_slice(&key).is_err() {
            return Err(TlsError::NoKey {
                path: key_from.to_string(),
            });
        }
        let identity = TlsIdentity { cert, key };
        // rustls parses the leaf and compares its public key with the key's.
        Server::builder()
            .tls_config(ServerTlsConfig::new().identity(identity.tonic()))
            .map_err(|_| TlsError::Mismatch {
                cert: cert_from.to_string(),
                key: key_from.to_string(),
            })?;
        Ok(identity)
    }

    /// Read and check a certificate file and its key file.
    pub fn from_files(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let cert_pem = read(TlsFile::Cert, cert)?;
        let key_pem = read(TlsFile::Key, key)?;
        TlsIdentity::from_pem(
            cert_pem,
            &cert.display().to_string(),
            key_pem,
            &key.display().to_string(),
        )
    }

    /// The certificate (chain) in PEM.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert
    }

    fn tonic(&self) -> Identity {
        Identity::from_pem(&self.cert, &*self.key)
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert", &format_args!("<{} bytes of PEM>", self.cert.len()))
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

/// One or more CA certificates in PEM: what the other side's certificate
/// must be signed by. Checked for PEM here; whether it can serve as a
/// trust anchor is checked when it is paired with an identity
/// ([`ApiTls::new`], [`PeerTls::new`]).
#[derive(Clone)]
pub struct TlsCa {
    pem: Vec<u8>,
    from: String,
}

impl TlsCa {
    /// From PEM text; `from` names where it came from in errors.
    pub fn from_pem(pem: Vec<u8>, from: &str) -> Result<TlsCa, TlsError> {
        check_certificates(TlsFile::Ca, &pem, from)?;
        Ok(TlsCa {
            pem,
            from: from.to_string(),
        })
    }

    /// Read and check a CA file.
    pub fn from_file(path: &Path) -> Result<TlsCa, TlsError> {
        TlsCa::from_pem(read(TlsFile::Ca, path)?, &path.display().to_string())
    }

    /// How a client dials a server whose certificate this CA signed,
    /// presenting `identity` if the server asks for one (mutual TLS). The
    /// name checked is the dialled host's unless the caller sets one
    /// (`ClientTlsConfig::domain_name`).
    pub fn client_config(&self, identity: Option<&TlsIdentity>) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(self.tonic());
        match identity {
            Some(identity) => config.identity(identity.tonic()),
            None => config,
        }
    }

    fn tonic(&self) -> Certificate {
        Certificate::from_pem(&self.pem)
    }
}

impl std::fmt::Debug for TlsCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCa").field("from", &self.from).finish()
    }
}

/// A server setting with `client_ca` required of every client, checked.
fn server_config(
    identity: &TlsIdentity,
    client_ca: Option<&TlsCa>,
) -> Result<ServerTlsConfig, TlsError> {
    let config = ServerTlsConfig::new()
        .identity(identity.tonic())
        .timeout(HANDSHAKE_TIMEOUT);
    let Some(ca) = client_ca else {
        return Ok(config);
    };
    let config = config.client_ca_root(ca.tonic());
    // The identity was checked on its own, so a failure is the CA's:
    // rustls skips certificates it cannot parse and refuses an empty set.
    Server::builder()
        .tls_config(config.clone())
        .map_err(|_| TlsError::BadCa {
            path: ca.from.clone(),
        })?;
    Ok(config)
}

/// TLS on the client API: the agent serves `identity`; with `client_ca`,
/// every client must present a certificate signed by it (mutual TLS).
/// Health and reflection are served on the same port, so the same rule
/// covers them. The API token, if set, is still required.
#[derive(Clone, Debug)]
pub struct ApiTls {
    identity: TlsIdentity,
    client_ca: Option<TlsCa>,
    server: ServerTlsConfig,
}

impl ApiTls {
    /// Pair the API's certificate with an optional client CA; refused if
    /// the CA holds no usable certificate.
    pub fn new(identity: TlsIdentity, client_ca: Option<TlsCa>) -> Result<ApiTls, TlsError> {
        let server = server_config(&identity, client_ca.as_ref())?;
        Ok(ApiTls {
            identity,
            client_ca,
            server,
        })
    }

    /// The certificate served.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn requires_client_cert(&self) -> bool {
        self.client_ca.is_some()
    }

    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        self.server.clone()
    }
}

/// Mutual TLS on the peer port: the agent serves `identity` and presents
/// it when it dials a peer; every peer's certificate, dialled or dialling,
/// must be signed by `ca`, and a dialled peer's must carry `server_name`.
#[derive(Clone, Debug)]
pub struct PeerTls {
    identity: TlsIdentity,
    ca: TlsCa,
    server_name: String,
    server: ServerTlsConfig,
}

impl PeerTls {
    /// Pair the node's certificate with the cluster's CA, expecting
    /// [`DEFAULT_PEER_SERVER_NAME`] of dialled peers; refused if the CA
    /// holds no usable certificate.
    pub fn new(identity: TlsIdentity, ca: TlsCa) -> Result<PeerTls, TlsError> {
        let server = server_config(&identity, Some(&ca))?;
        Ok(PeerTls {
            identity,
            ca,
            server_name: DEFAULT_PEER_SERVER_NAME.to_string(),
            server,
        })
    }

    /// Expect `name` instead of [`DEFAULT_PEER_SERVER_NAME`] in dialled
    /// peers' certificates.
    pub fn with_server_name(self, name: impl Into<String>) -> PeerTls {
        PeerTls {
            server_name: name.into(),
            ..self
        }
    }

    /// The name a dialled peer's certificate must carry.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        self.server.clone()
    }

    /// How links dial: verify against the CA and the fixed name, present
    /// the node's own certificate, and give up on a handshake after
    /// `timeout`.
    pub(crate) fn client_config(&self, timeout: Duration) -> ClientTlsConfig {
        self.ca
            .client_config(Some(&self.identity))
            .domain_name(self.server_name.clone())
            .timeout(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_by_file_and_never_shown() {
        let e = TlsIdentity::from_pem(b"not pem".to_vec(), "c.pem", b"x".to_vec(), "k.pem")
            .unwrap_err();
        assert_eq!(e.file(), TlsFile::Cert);
        assert_eq!(e.to_string(), "c.pem holds no PEM certificate");
        let e = TlsCa::from_pem(b"s3cret".to_vec(), "ca.pem").unwrap_err();
        assert_eq!(e.file(), TlsFile::Ca);
        assert!(!e.to_string().contains("s3cret"));
        let e = TlsIdentity::from_files(Path::new("/nonexistent/c.pem"), Path::new("k.pem"))
            .unwrap_err();
        assert_eq!(e.file(), TlsFile::Cert);
        assert!(
            e.to_string().starts_with("cannot read /nonexistent/c.pem"),
            "{e}"
        );
    }
}
