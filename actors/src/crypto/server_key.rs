//! The server key: HMAC key for secure codes and API secrets. It never lives in the database.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use hmac::Mac;
use rand::RngCore;

/// Shortest acceptable key; HMAC-SHA256 gains nothing from more than 64.
const KEY_BYTES_MIN: usize = 32;
const GENERATED_KEY_BYTES: usize = 32;

#[derive(Clone)]
pub struct ServerKey(std::sync::Arc<[u8]>);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ServerKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerKeyError {
    #[error("server key {0}: {1}")]
    Io(String, std::io::Error),
    #[error("server key must be Base64 of at least {KEY_BYTES_MIN} bytes")]
    Invalid,
}

impl ServerKey {
    /// Decode a key given as Base64 (environment or configuration file).
    pub fn from_base64(text: &str) -> Result<Self, ServerKeyError> {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| ServerKeyError::Invalid)?;
        if bytes.len() < KEY_BYTES_MIN {
            return Err(ServerKeyError::Invalid);
        }
        Ok(Self(bytes.into()))
    }

    /// Read the key file, creating it (mode 0600) with a fresh random key if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, ServerKeyError> {
        let describe = |error| ServerKeyError::Io(path.display().to_string(), error);
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(describe)?;
                }
                let mut bytes = vec![0_u8; GENERATED_KEY_BYTES];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(encoded.as_bytes()).map_err(describe)?;
                        file.sync_all().map_err(describe)?;
                        Ok(Self(bytes.into()))
                    }
                    // Another process (the CLI, a second node) created it first: use theirs.
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path).map_err(describe)?;
                        Self::from_base64(&text)
                    }
                    Err(error) => Err(describe(error)),
                }
            }
            Err(error) => Err(describe(error)),
        }
    }

    pub(crate) fn hmac(&self) -> super::HmacSha256 {
        // HMAC accepts keys of any length, so this never falls back in practice.
        super::HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| <super::HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
    }
}
