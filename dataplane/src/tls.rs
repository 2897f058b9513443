//! TLS for the admin API (port 4001).
//!
//! The certificate chain and private key are PEM files, typically a cert-manager Secret
//! mounted in the pod. They are read at startup (a broken pair fails the start) and read
//! again whenever a new connection arrives: when their contents changed, a new
//! [`ServerConfig`] is built for that connection and the ones after it. Connections
//! already open keep the pair they started with. A broken new pair (unreadable, not PEM, a key that does not match the certificate,
//! or half of a rotation not written yet) is logged and the previous pair keeps serving
//! until the files change again.
//!
//! Only HTTP/1.1 is offered (ALPN `http/1.1`), with rustls' `ring` provider and its safe
//! default protocol versions (TLS 1.2 and 1.3).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate chain and private key of a TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's certificate first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate and key pair cannot be served. Each message is whole (it includes
/// its cause).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A file does not hold what it should (PEM blocks of the right kind).
    #[error("{}: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("{} and {}: {error}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        error: rustls::Error,
    },
}

/// A [`ServerConfig`] that follows its certificate and key files.
#[derive(Debug)]
pub struct ReloadingTls {
    files: TlsFiles,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The files' contents at the last look (whether or not they could be served then);
    /// `None` when they could not be read.
    seen: Option<Pem>,
    /// The pair serving new connections.
    config: Arc<ServerConfig>,
}

/// The contents of the certificate and key files.
#[derive(PartialEq, Eq)]
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Pem")
            .field("cert_len", &self.cert.len())
            .finish_non_exhaustive()
    }
}

impl ReloadingTls {
    /// Loads the pair from `files`; an error when it cannot be served.
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let pem = read_pair(&files)?;
        let config = Arc::new(build(&files, &pem)?);
        Ok(Self {
            files,
            state: Mutex::new(State {
                seen: Some(pem),
                config,
            }),
        })
    }

    /// The configuration for a new connection: the files' pair, built again if their
    /// contents changed since the last look; the previous pair if the new one cannot be
    /// served. (The files are small: comparing contents costs two reads and, unlike
    /// modification times, sees every change, however quick.)
    pub fn current(&self) -> Arc<ServerConfig> {
        let now = read_pair(&self.files);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match now {
            Ok(pem) if state.seen.as_ref() != Some(&pem) => {
                // Remembered even when it cannot be served, so that a broken pair is
                // reported once and tried again only when the files change again.
                match build(&self.files, &pem) {
                    Ok(config) => {
                        state.config = Arc::new(config);
                        tracing::info!(
                            cert = %self.files.cert.display(),
                            "admin TLS: serving a new certificate"
                        );
                    }
                    Err(e) => tracing::warn!(
                        "admin TLS: the new certificate cannot be served, the previous one keeps serving: {e}"
                    ),
                }
                state.seen = Some(pem);
            }
            Ok(_) => {}
            Err(e) => {
                if state.seen.take().is_some() {
                    tracing::warn!("admin TLS: the previous certificate keeps serving: {e}");
                }
            }
        }
        Arc::clone(&state.config)
    }
}

fn read_pair(files: &TlsFiles) -> Result<Pem, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| TlsError::Read {
            path: path.to_owned(),
            error,
        })
    };
    Ok(Pem {
        cert: read(&files.cert)?,
        key: read(&files.key)?,
    })
}

/// A server configuration for the pair in `files` (HTTP/1.1 only).
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    build(files, &read_pair(files)?)
}

fn build(files: &TlsFiles, pem: &Pem) -> Result<ServerConfig, TlsError> {
    let pem_error = |path: &Path, message: String| TlsError::Pem {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(
            &files.cert,
            "no certificate (a PEM CERTIFICATE block)".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.key).map_err(|e| match e {
        pem::Error::NoItemsFound => pem_error(
            &files.key,
            "no private key (a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
                .to_owned(),
        ),
        e => pem_error(&files.key, e.to_string()),
    })?;
    let refused = |error| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        error,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(refused)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(refused)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("modelgate-tls-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir");
            Self(dir)
        }

        fn files(&self, cert: &str, key: &str) -> TlsFiles {
            let files = TlsFiles {
                cert: self.0.join("tls.crt"),
                key: self.0.join("tls.key"),
            };
            std::fs::write(&files.cert, cert).expect("write");
            std::fs::write(&files.key, key).expect("write");
            files
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert: PathBuf::from("/nonexistent/tls.crt"),
            key: PathBuf::from("/nonexistent/tls.key"),
        };
        let e = ReloadingTls::new(files).expect_err("no files");
        assert!(matches!(e, TlsError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/tls.crt"), "{e}");
    }

    #[test]
    fn files_without_pem_blocks_are_refused() {
        let dir = Dir::new("empty");
        let e = server_config(&dir.files("not a certificate\n", "")).expect_err("no cert");
        assert!(e.to_string().contains("tls.crt: no certificate"), "{e}");

        // A certificate block (its content is not checked before the key is read).
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = server_config(&dir.files(cert, "nothing here\n")).expect_err("no key");
        assert!(e.to_string().contains("tls.key: no private key"), "{e}");
    }

    #[test]
    fn a_key_rustls_cannot_use_is_refused() {
        let dir = Dir::new("badkey");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let e = server_config(&dir.files(cert, key)).expect_err("garbage key");
        assert!(matches!(e, TlsError::Config { .. }), "{e:?}");
    }
}
