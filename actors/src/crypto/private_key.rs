//! RSA private-key operations, all of them, through one constant-time implementation.
//!
//! The `rsa` crate has an unfixed timing side channel in its private-key operations
//! (RUSTSEC-2023-0071, "Marvin"). cashgrid uses it only for public-key work (encrypting
//! secure codes to phones, verifying phones' signatures). Whatever needs a private key —
//! signing MQTT trigger pushes now, signing webhooks and decrypting voucher payloads later —
//! goes through this module, which uses aws-lc-rs (AWS-LC, constant-time RSA).
//!
//! Decryption belongs here too when it is needed: parse the same PEM into aws-lc-rs's
//! `rsa::PrivateDecryptingKey` beside the signing key pair.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

/// PEM label of a PKCS#1 `RSAPrivateKey`.
const PKCS1_LABEL: &str = "RSA PRIVATE KEY";
/// PEM label of a PKCS#8 `PrivateKeyInfo`.
const PKCS8_LABEL: &str = "PRIVATE KEY";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateKeyError {
    #[error("not a PEM private key: expected an 'RSA PRIVATE KEY' (PKCS#1) or 'PRIVATE KEY' (PKCS#8) block")]
    NotPem,
    #[error("unsupported PEM type '{0}': expected an unencrypted 'RSA PRIVATE KEY' or 'PRIVATE KEY'")]
    UnsupportedType(String),
    /// Not an RSA key, malformed, or outside 2048 to 8192 bits.
    #[error("unusable RSA private key: {0}")]
    Rejected(String),
    #[error("RSA signing failed")]
    Signing,
}

/// An RSA private key that signs with PKCS#1 v1.5 padding and SHA-256 ("RSA-SHA256", what
/// Node's `crypto.createSign('RSA-SHA256')` makes). Never printed, not even in `Debug`.
pub struct RsaSigningKey {
    key_pair: RsaKeyPair,
    random: SystemRandom,
}

impl fmt::Debug for RsaSigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RsaSigningKey")
            .field("modulus_bits", &(self.key_pair.public_modulus_len() * 8))
            .finish()
    }
}

impl RsaSigningKey {
    /// A PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`) PEM block. Literal `\n` pairs
    /// count as line breaks, as in the original's `MQTT_SIGNATURE_KEY` (a PEM in one
    /// environment line).
    pub fn from_pem(text: &str) -> Result<Self, PrivateKeyError> {
        let text = text.replace("\\n", "\n");
        let block = pem::parse(text.trim()).map_err(|_| PrivateKeyError::NotPem)?;
        let parsed = match block.tag() {
            PKCS1_LABEL => RsaKeyPair::from_der(block.contents()),
            PKCS8_LABEL => RsaKeyPair::from_pkcs8(block.contents()),
            other => return Err(PrivateKeyError::UnsupportedType(other.to_owned())),
        };
        let key_pair = parsed.map_err(|error| PrivateKeyError::Rejected(error.to_string()))?;
        Ok(Self { key_pair, random: SystemRandom::new() })
    }

    /// The RSASSA-PKCS1-v1_5 SHA-256 signature of `message`.
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, PrivateKeyError> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &self.random, message, &mut signature)
            .map_err(|_| PrivateKeyError::Signing)?;
        Ok(signature)
    }

    /// The public half as a PKCS#1 `RSAPublicKey` (DER), for whoever verifies.
    pub fn public_key_pkcs1_der(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        self.key_pair.public_key().as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _};
    use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
    use rsa::{Pkcs1v15Sign, RsaPublicKey};
    use sha2::{Digest as _, Sha256};

    use super::*;

    const PKCS1_2048: &str = include_str!("../../../tests/fixtures/keys/phone_c_2048.private.pem");
    const PKCS1_1024: &str = include_str!("../../../tests/fixtures/keys/phone_a_1024.private.pem");
    const PUBLIC_KEY: &str = include_str!("../../../tests/fixtures/keys/phone_c_2048.spki.pub.pem");

    fn key(pem: &str) -> RsaSigningKey {
        RsaSigningKey::from_pem(pem).unwrap_or_else(|error| panic!("fixture key: {error}"))
    }

    /// Verified with the `rsa` crate (public-key operation): an implementation independent of
    /// the signer.
    fn verifies(public: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
        public.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message), signature).is_ok()
    }

    fn public_of(pem: &str) -> RsaPublicKey {
        rsa::RsaPrivateKey::from_pkcs1_pem(pem).map(|key| key.to_public_key()).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn pkcs1_and_pkcs8_keys_sign_rsa_sha256_that_an_independent_verifier_accepts() {
        let public = public_of(PKCS1_2048);
        let pkcs8 = rsa::RsaPrivateKey::from_pkcs1_pem(PKCS1_2048)
            .and_then(|key| key.to_pkcs8_pem(LineEnding::LF).map_err(Into::into))
            .unwrap_or_else(|error| panic!("{error}"));
        for signer in [key(PKCS1_2048), key(&pkcs8)] {
            let signature = signer.sign_sha256(b"{\"triggercode\":\"t\"}").unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(signature.len(), 256);
            assert!(verifies(&public, b"{\"triggercode\":\"t\"}", &signature));
            assert!(!verifies(&public, b"{\"triggercode\":\"u\"}", &signature));
            let own_public =
                RsaPublicKey::from_pkcs1_der(&signer.public_key_pkcs1_der()).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(own_public, public);
        }
    }

    #[test]
    fn a_key_in_one_line_with_literal_backslash_n_is_read() {
        let one_line = PKCS1_2048.trim().replace('\n', "\\n");
        assert!(!one_line.contains('\n'));
        let signature = key(&one_line).sign_sha256(b"m").unwrap_or_else(|error| panic!("{error}"));
        assert!(verifies(&public_of(PKCS1_2048), b"m", &signature));
    }

    #[test]
    fn public_keys_garbage_and_short_keys_are_refused_with_reasons() {
        assert_eq!(RsaSigningKey::from_pem("no key").err(), Some(PrivateKeyError::NotPem));
        assert_eq!(
            RsaSigningKey::from_pem(PUBLIC_KEY).err(),
            Some(PrivateKeyError::UnsupportedType("PUBLIC KEY".into()))
        );
        assert!(matches!(RsaSigningKey::from_pem(PKCS1_1024), Err(PrivateKeyError::Rejected(_))), "below 2048 bits");
        let debug = format!("{:?}", key(PKCS1_2048));
        assert_eq!(debug, "RsaSigningKey { modulus_bits: 2048 }", "nothing secret in Debug");
    }
}
