//! Secrets: secure codes for phones, keyed hashes, API credentials.
//!
//! Nothing secret is ever stored in clear: secure codes and API secrets are kept as HMAC-SHA256
//! under a server key that lives outside the database, so a leaked database reveals neither and
//! does not allow an offline brute force of the six-byte codes.

pub mod bitcoin_message;
pub mod password;
mod phone_signature;
pub mod private_key;
mod sealing;
mod server_key;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::{Rng, RngCore};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Encrypt, RsaPublicKey};
use sha2::Sha256;
use uuid::Uuid;

pub use phone_signature::phone_signature_valid;
pub use sealing::{SealError, Sealer};
pub use server_key::{ServerKey, ServerKeyError};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a secure code in the default (binary) mode.
pub const SECURE_CODE_BYTES: usize = 6;
/// Digits of a plain code and of a secure code in plain-code mode.
pub const PLAIN_CODE_DIGITS: usize = 6;
/// Bytes of salt in front of a stored secure-code hash (a token id).
const CODE_SALT_BYTES: usize = 16;
/// Random bytes in an API key or secret (64 base32 characters).
const API_CREDENTIAL_BYTES: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("Invalid public key: expected a PEM 'RSA PUBLIC KEY' (PKCS#1) or 'PUBLIC KEY' (SPKI) block")]
    NotPem,
    #[error("Invalid public key: unsupported PEM type '{0}', expected 'RSA PUBLIC KEY' or 'PUBLIC KEY'")]
    UnsupportedType(String),
    #[error("Invalid public key: {0}")]
    Malformed(String),
    #[error("Invalid public key: the RSA modulus has {bits} bits; at least {min_bits} are required")]
    TooShort { bits: usize, min_bits: usize },
    #[error("Invalid public key: the public exponent {0} is not accepted; use 65537")]
    Exponent(String),
}

/// Smallest RSA modulus accepted by default: what the original's phone apps generate at least.
pub const KEY_BITS_MIN_DEFAULT: usize = 1024;
/// The public exponent every mainstream key generator uses (F4). Small exponents (3, 5, 17)
/// turn padding mistakes into plaintext recovery; a policy may still allow them.
const STANDARD_EXPONENT: u32 = 65_537;

/// What a phone's public key must be to be registered or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Smallest modulus in bits (`min_rsa_key_bits`; 1024 by default, 2048 is prudent).
    pub min_bits: usize,
    /// Accept public exponents other than 65537 (`allow_any_rsa_exponent`).
    pub any_exponent: bool,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self { min_bits: KEY_BITS_MIN_DEFAULT, any_exponent: false }
    }
}

/// Parse a phone's public key and check it against `policy`. Accepts PKCS#1 and SPKI PEM with
/// any line wrapping.
pub fn parse_public_key(pem_text: &str, policy: KeyPolicy) -> Result<RsaPublicKey, KeyError> {
    let block = pem::parse(normalise_pem(pem_text).as_bytes()).map_err(|_| KeyError::NotPem)?;
    let key = match block.tag() {
        "RSA PUBLIC KEY" => {
            RsaPublicKey::from_pkcs1_der(block.contents()).map_err(|error| KeyError::Malformed(error.to_string()))
        }
        "PUBLIC KEY" => {
            RsaPublicKey::from_public_key_der(block.contents()).map_err(|error| KeyError::Malformed(error.to_string()))
        }
        other => Err(KeyError::UnsupportedType(other.to_owned())),
    }?;
    let bits = key.n().bits();
    if bits < policy.min_bits {
        return Err(KeyError::TooShort { bits, min_bits: policy.min_bits });
    }
    if !policy.any_exponent && *key.e() != BigUint::from(STANDARD_EXPONENT) {
        return Err(KeyError::Exponent(key.e().to_string()));
    }
    Ok(key)
}

/// Phone apps send PEM with arbitrary wrapping, `\r\n`, or even literal `\n` escapes.
fn normalise_pem(text: &str) -> String {
    text.replace("\\n", "\n").replace('\r', "")
}

/// A fresh secure code: six random bytes, or six ASCII digits in plain-code mode.
pub fn new_secure_code(plain: bool) -> Vec<u8> {
    if plain {
        random_digits().into_bytes()
    } else {
        let mut code = vec![0_u8; SECURE_CODE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut code);
        code
    }
}

/// Six decimal digits, left-padded: a random u32 modulo 10^6 as the original draws them.
pub fn random_digits() -> String {
    let value = rand::rngs::OsRng.gen::<u32>() % 1_000_000;
    format!("{value:0width$}", width = PLAIN_CODE_DIGITS)
}

/// Encrypt a secure code for the phone: PKCS#1 v1.5 with random padding, Base64.
/// Existing phone apps decrypt it unchanged; equal codes no longer give equal ciphertexts.
pub fn encrypt_code(key: &RsaPublicKey, code: &[u8]) -> Result<String, KeyError> {
    let ciphertext = key
        .encrypt(&mut rand::rngs::OsRng, Pkcs1v15Encrypt, code)
        .map_err(|error| KeyError::Malformed(error.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(ciphertext))
}

/// An API key or secret: 40 random bytes in the original's base32 alphabet (64 characters).
pub fn new_api_credential() -> String {
    let mut bytes = [0_u8; API_CREDENTIAL_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    api_base32().encode(&bytes)
}

fn api_base32() -> data_encoding::Encoding {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("0123456789abcdefghjkmnpqrtuvwxyz");
    // The alphabet is a constant, so this cannot fail; fall back to a standard one regardless.
    spec.encoding().unwrap_or(data_encoding::BASE32_NOPAD)
}

/// Keyed hashing of secrets under the server key.
#[derive(Clone)]
pub struct SecretHasher {
    key: ServerKey,
}

impl SecretHasher {
    pub fn new(key: ServerKey) -> Self {
        Self { key }
    }

    fn mac(&self, purpose: &[u8]) -> HmacSha256 {
        let mut mac = self.key.hmac();
        mac.update(purpose);
        mac
    }

    fn code_mac(&self, salt: &[u8], code: &[u8]) -> HmacSha256 {
        let mut mac = self.mac(b"cashgrid secure code\0");
        mac.update(salt);
        mac.update(code);
        mac
    }

    /// `salt ‖ HMAC(key, salt ‖ code)` with the issuing token's id as salt, so equal codes on
    /// two tokens hash differently. The salt travels inside the stored value, so a partial
    /// cash-out's remainder (a new id, the same code) still verifies the code it inherits.
    pub fn code_hash(&self, token: Uuid, code: &[u8]) -> Vec<u8> {
        let salt = token.as_bytes();
        let mut stored = salt.to_vec();
        stored.extend_from_slice(&self.code_mac(salt, code).finalize().into_bytes());
        stored
    }

    /// Constant-time comparison of a presented code with the stored salted hash.
    pub fn code_matches(&self, code: &[u8], stored: &[u8]) -> bool {
        if stored.len() <= CODE_SALT_BYTES {
            return false;
        }
        let (salt, mac) = stored.split_at(CODE_SALT_BYTES);
        self.code_mac(salt, code).verify_slice(mac).is_ok()
    }

    fn api_secret_mac(&self, secret: &str) -> HmacSha256 {
        let mut mac = self.mac(b"cashgrid api secret\0");
        // The original compares case-insensitively: an upper-cased secret still authenticates.
        mac.update(secret.to_ascii_lowercase().as_bytes());
        mac
    }

    pub fn api_secret_hash(&self, secret: &str) -> Vec<u8> {
        self.api_secret_mac(secret).finalize().into_bytes().to_vec()
    }

    pub fn api_secret_matches(&self, secret: &str, stored: &[u8]) -> bool {
        self.api_secret_mac(secret).verify_slice(stored).is_ok()
    }

    /// The key that signs the Crypto Capital API's messages: derived from the server key, so
    /// every node sharing the key signs with one address, and nothing else needs keeping.
    pub fn message_key(&self) -> bitcoin_message::MessageKey {
        let mut round: u8 = 0;
        loop {
            let mut mac = self.mac(b"cashgrid ccc message key\0");
            mac.update(&[round]);
            let secret: [u8; 32] = mac.finalize().into_bytes().into();
            // Not a valid scalar (zero or at least the curve order) with odds of about 2^-128.
            if let Some(key) = bitcoin_message::MessageKey::from_secret(&secret) {
                return key;
            }
            round = round.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests;
