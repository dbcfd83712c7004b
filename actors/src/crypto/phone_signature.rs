//! Phones' signatures: a trigger claim carries an RSA PKCS#1 v1.5 signature with SHA-256,
//! made with the token device's private key. A public-key operation, so the `rsa` crate does it
//! (see `private_key` for the other direction).

use base64::Engine as _;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

/// The phone's signature: RSA PKCS#1 v1.5 with SHA-256 over `message`, Base64 (standard or
/// URL-safe, padded or not, as Node's lenient decoder reads it). Anything else is invalid.
pub fn phone_signature_valid(key: &RsaPublicKey, message: &[u8], signature: &str) -> bool {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text: String = signature.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let decoded =
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(&text).ok());
    let Some(signature) = decoded else {
        return false;
    };
    let digest = Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::RsaPrivateKey;

    use super::*;

    const PRIVATE_PEM: &str = include_str!("../../../tests/fixtures/keys/phone_a_1024.private.pem");

    fn sign(key: &RsaPrivateKey, message: &[u8]) -> Vec<u8> {
        let digest = Sha256::digest(message);
        match key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest) {
            Ok(signature) => signature,
            Err(error) => panic!("signing failed: {error}"),
        }
    }

    #[test]
    fn a_phone_signature_over_code_and_radiocode_verifies_in_any_base64_spelling() {
        let private = RsaPrivateKey::from_pkcs1_pem(PRIVATE_PEM).unwrap_or_else(|error| panic!("fixture: {error}"));
        let public = private.to_public_key();
        let signature = sign(&private, b"trigger-1radiocode-1");
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let standard = STANDARD.encode(&signature);
        assert!(phone_signature_valid(&public, b"trigger-1radiocode-1", &standard));
        assert!(phone_signature_valid(&public, b"trigger-1radiocode-1", &URL_SAFE_NO_PAD.encode(&signature)));
        let wrapped = format!("{}\n{}", &standard[..40], &standard[40..]);
        assert!(phone_signature_valid(&public, b"trigger-1radiocode-1", &wrapped));
        assert!(!phone_signature_valid(&public, b"trigger-2radiocode-1", &standard), "another message");
        assert!(!phone_signature_valid(&public, b"trigger-1radiocode-1", "not base64 at all!"));
        assert!(!phone_signature_valid(&public, b"trigger-1radiocode-1", ""));
        let mut flipped = signature.clone();
        flipped[10] ^= 1;
        assert!(!phone_signature_valid(&public, b"trigger-1radiocode-1", &STANDARD.encode(flipped)));
    }
}
