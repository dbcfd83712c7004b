//! Encryption at rest for the few secrets the server must read back: API secrets (their owner
//! may reveal them in the portal) and TOTP secrets (login checks codes against them).
//!
//! AES-256-GCM under a key derived from the server key, so a leaked database alone reveals
//! nothing. Each sealed value binds what it is and whose it is (associated data), so a value
//! copied into another row or column does not open. Layout: `version ‖ nonce ‖ ciphertext+tag`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::Mac;
use rand::RngCore;

use super::{SecretHasher, ServerKey};
use crate::domain::CustomerId;

/// Layout version byte in front of every sealed value (a later key rotation bumps it).
const FORMAT_VERSION: u8 = 1;
const NONCE_BYTES: usize = 12;
/// Label of the sealing key derived from the server key.
const SEALING_KEY_LABEL: &[u8] = b"cashgrid sealing key v1\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a secret could not be sealed or opened (another server key, or corrupt data)")]
pub struct SealError;

impl ServerKey {
    /// A 32-byte key for one purpose: HMAC-SHA256 of a fixed label under the server key. Every
    /// node sharing the server key derives the same keys; none is stored anywhere.
    pub fn derive_key(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = self.hmac();
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

impl SecretHasher {
    /// The sealer for secrets at rest, keyed from the same server key as the hashes.
    pub fn sealer(&self) -> Sealer {
        Sealer::new(&self.key.derive_key(SEALING_KEY_LABEL))
    }

    /// A key for another purpose (e.g. JWT signing), derived from the server key.
    pub fn derive_key(&self, label: &[u8]) -> [u8; 32] {
        self.key.derive_key(label)
    }
}

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)) }
    }

    fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0_u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(context);
        // Encryption fails only for messages beyond GCM's 64 GiB limit; secrets are tiny.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| SealError)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        sealed.push(FORMAT_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some((&FORMAT_VERSION, rest)) = sealed.split_first() else {
            return Err(SealError);
        };
        if rest.len() <= NONCE_BYTES {
            return Err(SealError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let aad = associated_data(context);
        self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| SealError)
    }

    /// An API secret, bound to its (lower-cased) API key.
    pub fn seal_api_secret(&self, apikey: &str, secret: &str) -> Result<Vec<u8>, SealError> {
        self.seal(&api_secret_context(apikey), secret.as_bytes())
    }

    pub fn open_api_secret(&self, apikey: &str, sealed: &[u8]) -> Result<String, SealError> {
        let bytes = self.open(&api_secret_context(apikey), sealed)?;
        String::from_utf8(bytes).map_err(|_| SealError)
    }

    /// A TOTP secret (raw bytes), bound to its customer.
    pub fn seal_totp_secret(&self, customer: CustomerId, secret: &[u8]) -> Result<Vec<u8>, SealError> {
        self.seal(&totp_context(customer), secret)
    }

    pub fn open_totp_secret(&self, customer: CustomerId, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.open(&totp_context(customer), sealed)
    }
}

fn associated_data(context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + context.len());
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(context);
    aad
}

fn api_secret_context(apikey: &str) -> Vec<u8> {
    let mut context = b"api secret\0".to_vec();
    context.extend_from_slice(apikey.to_ascii_lowercase().as_bytes());
    context
}

fn totp_context(customer: CustomerId) -> Vec<u8> {
    let mut context = b"totp secret\0".to_vec();
    context.extend_from_slice(customer.to_string().as_bytes());
    context
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(&[byte; 32])
    }

    #[test]
    fn api_secrets_round_trip_and_are_not_stored_in_clear() {
        let sealed = sealer(1).seal_api_secret("KEY", "the-secret").unwrap();
        assert!(!sealed.windows(10).any(|window| window == b"the-secret"));
        assert_eq!(sealer(1).open_api_secret("key", &sealed).as_deref(), Ok("the-secret"));
    }

    #[test]
    fn sealing_twice_gives_different_bytes() {
        assert_ne!(sealer(1).seal_api_secret("k", "s").unwrap(), sealer(1).seal_api_secret("k", "s").unwrap());
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let sealed = sealer(1).seal_totp_secret(7, b"0123456789abcdefghij").unwrap();
        assert_eq!(sealer(1).open_totp_secret(7, &sealed), Ok(b"0123456789abcdefghij".to_vec()));
        assert_eq!(sealer(2).open_totp_secret(7, &sealed), Err(SealError));
        assert_eq!(sealer(1).open_totp_secret(8, &sealed), Err(SealError));
        assert_eq!(sealer(1).open_api_secret("7", &sealed), Err(SealError));
    }

    #[test]
    fn corrupt_or_truncated_values_do_not_open() {
        let mut sealed = sealer(1).seal_api_secret("k", "secret").unwrap();
        assert_eq!(sealer(1).open_api_secret("k", &sealed[..NONCE_BYTES]), Err(SealError));
        assert_eq!(sealer(1).open_api_secret("k", &[]), Err(SealError));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(sealer(1).open_api_secret("k", &sealed), Err(SealError));
    }

    #[test]
    fn derived_keys_depend_on_the_label_and_the_server_key() {
        let a = ServerKey::from_base64(&"A".repeat(44)).unwrap();
        let b = ServerKey::from_base64(&"B".repeat(44)).unwrap();
        assert_eq!(a.derive_key(b"x"), a.derive_key(b"x"));
        assert_ne!(a.derive_key(b"x"), a.derive_key(b"y"));
        assert_ne!(a.derive_key(b"x"), b.derive_key(b"x"));
    }
}
