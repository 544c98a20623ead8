//! TLS for STOMP listeners (rustls on the `ring` provider). A [`Tls`] holds one listener's current
//! server configuration: its certificate and key from PEM files, or a development certificate made
//! once under the data directory (`self_signed`), and for mutual TLS the client CAs. `reload`
//! (on SIGHUP) reads the files again and swaps the configuration for new handshakes only:
//! connections already open keep their session, and a reload that fails keeps the old one.
//! Reading files and building configurations happens on a blocking thread.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::{CertSource, TlsSpec};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    Pem { what: &'static str, path: PathBuf },
    #[error("cannot write the development certificate in {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the development certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("client_ca {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// One TLS listener's certificates, swappable at run time.
pub struct Tls {
    listener: &'static str,
    spec: TlsSpec,
    /// The development certificate's directory (`<data_dir>/tls`).
    dev_dir: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl Tls {
    /// Loads the listener's certificate (making the development one if asked and missing).
    pub async fn load(
        listener: &'static str,
        spec: TlsSpec,
        data_dir: &Path,
    ) -> Result<Arc<Tls>, TlsError> {
        let dev_dir = data_dir.join("tls");
        let (s, d) = (spec.clone(), dev_dir.clone());
        let config = blocking(move || server_config(listener, &s, &d)).await?;
        Ok(Arc::new(Tls {
            listener,
            spec,
            dev_dir,
            current: RwLock::new(TlsAcceptor::from(config)),
        }))
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().clone()
    }

    /// Whether a client certificate's common name may stand in for the login.
    pub fn cert_login(&self) -> bool {
        self.spec.cert_login
    }

    /// Reads the files again; on success new handshakes use them, on failure nothing changes.
    pub async fn reload(&self) {
        let (name, s, d) = (self.listener, self.spec.clone(), self.dev_dir.clone());
        match blocking(move || server_config(name, &s, &d)).await {
            Ok(config) => {
                *self.current.write() = TlsAcceptor::from(config);
                info!(listener = self.listener, "TLS certificates reloaded");
            }
            Err(e) => warn!(
                listener = self.listener,
                error = %e,
                "TLS reload failed; keeping the certificates in use"
            ),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TlsError> + Send + 'static,
) -> Result<T, TlsError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// The login a client certificate carries: its subject's first common name.
pub fn certificate_login(conn: &ServerConnection) -> Option<String> {
    let der = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// A certificate's SHA-256 fingerprint as `AB:CD:…`, the form `openssl x509 -fingerprint
/// -sha256` and browsers show.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    listener: &'static str,
    spec: &TlsSpec,
    dev_dir: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = match &spec.source {
        CertSource::Files { cert, key } => (cert.clone(), key.clone()),
        CertSource::SelfSigned => development_certificate(dev_dir)?,
    };
    let certs = read_pem_all::<CertificateDer>(&cert_path, "certificate")?;
    let key = read_pem::<PrivateKeyDer>(&key_path, "private key")?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &spec.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in read_pem_all::<CertificateDer>(path, "client CA certificate")? {
                roots.add(ca).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    info!(
        listener,
        cert = %cert_path.display(),
        sha256 = %fingerprint(&certs[0]),
        mutual = spec.client_ca.is_some(),
        "TLS certificate loaded"
    );
    Ok(Arc::new(builder.with_single_cert(certs, key)?))
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn read_pem<T: PemObject>(path: &Path, what: &'static str) -> Result<T, TlsError> {
    T::from_pem_slice(&read(path, what)?).map_err(|_| TlsError::Pem {
        what,
        path: path.to_owned(),
    })
}

fn read_pem_all<T: PemObject>(path: &Path, what: &'static str) -> Result<Vec<T>, TlsError> {
    let all: Vec<T> = T::pem_slice_iter(&read(path, what)?)
        .filter_map(Result::ok)
        .collect();
    if all.is_empty() {
        return Err(TlsError::Pem {
            what,
            path: path.to_owned(),
        });
    }
    Ok(all)
}

/// `<data_dir>/tls/self-signed.pem` and `.key`: made on first use and kept, so a client that
/// trusted the certificate once goes on trusting it after restarts.
fn development_certificate(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("self-signed.pem"), dir.join("self-signed.key"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    names.extend(hostname());
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Stampede development certificate",
    );
    let pair = rcgen::KeyPair::generate()?;
    let made = params.self_signed(&pair)?;
    // The key first, owner-only, so no reader ever sees a certificate without its key.
    write_file(&key, pair.serialize_pem().as_bytes(), 0o600).map_err(write_err(&key))?;
    write_file(&cert, made.pem().as_bytes(), 0o644).map_err(write_err(&cert))?;
    warn!(
        cert = %cert.display(),
        sha256 = %fingerprint(made.der()),
        "made a self-signed development certificate: clients must trust this file or fingerprint"
    );
    Ok((cert, key))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Each file its own temporary (`self-signed.key.tmp`), and its mode set on the open file: a
    // temporary left by a crash may exist with another mode, which `mode` alone would keep.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&buf[..end]).ok()?;
    (!name.is_empty() && name != "localhost").then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_development_certificate_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TlsSpec {
            source: CertSource::SelfSigned,
            client_ca: None,
            cert_login: false,
        };
        server_config("t", &spec, dir.path()).unwrap();
        let pem = std::fs::read(dir.path().join("self-signed.pem")).unwrap();
        server_config("t", &spec, dir.path()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("self-signed.pem")).unwrap(),
            pem
        );
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(fingerprint(&der).len(), 32 * 3 - 1);
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem").unwrap();
        let files = |cert: &Path| TlsSpec {
            source: CertSource::Files {
                cert: cert.to_owned(),
                key: cert.to_owned(),
            },
            client_ca: None,
            cert_login: false,
        };
        let e = server_config("t", &files(&dir.path().join("none.pem")), dir.path());
        assert!(e.unwrap_err().to_string().contains("none.pem"));
        let e = server_config("t", &files(&empty), dir.path()).unwrap_err();
        assert!(e.to_string().contains("empty.pem holds no PEM"), "{e}");
    }
}
