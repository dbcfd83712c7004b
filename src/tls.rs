//! HTTPS: rustls with the aws-lc-rs provider (the crypto library the engine's private-key
//! operations use), a certificate chain and a private key from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// `--tls-cert` and `--tls-key`: both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The server's TLS configuration; fails with the file and the reason.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading the TLS private key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not form a usable pair")?;
    // The server speaks HTTP/1.1 only (actix-web's http2 feature is off).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let read = || format!("reading the TLS certificate chain {}", path.display());
    let chain =
        CertificateDer::pem_file_iter(path).with_context(read)?.collect::<Result<Vec<_>, _>>().with_context(read)?;
    anyhow::ensure!(!chain.is_empty(), "{}: no CERTIFICATE block", path.display());
    Ok(chain)
}
