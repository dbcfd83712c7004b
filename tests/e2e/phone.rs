//! Test phones: RSA key fixtures and what a phone app does with a token (decrypt the secure
//! code, build the radiocode the ATM reads).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Pkcs1v15Encrypt, RsaPrivateKey};
use serde_json::Value;

/// One phone key pair; `public_pem` is what the phone registers.
pub struct PhoneKey {
    pub name: &'static str,
    pub public_pem: &'static str,
    private_pem: &'static str,
    /// Modulus length in bytes: the length of every ciphertext for this key.
    pub modulus_bytes: usize,
}

macro_rules! fixture {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/", $file))
    };
}

pub static PHONE_A_PKCS1: PhoneKey = PhoneKey {
    name: "phone A, RSA-1024, PKCS#1 PEM",
    public_pem: fixture!("phone_a_1024.pkcs1.pub.pem"),
    private_pem: fixture!("phone_a_1024.private.pem"),
    modulus_bytes: 128,
};

pub static PHONE_A_SPKI: PhoneKey = PhoneKey {
    name: "phone A, RSA-1024, SPKI PEM",
    public_pem: fixture!("phone_a_1024.spki.pub.pem"),
    private_pem: fixture!("phone_a_1024.private.pem"),
    modulus_bytes: 128,
};

pub static PHONE_B_PKCS1: PhoneKey = PhoneKey {
    name: "phone B, RSA-1024, PKCS#1 PEM",
    public_pem: fixture!("phone_b_1024.pkcs1.pub.pem"),
    private_pem: fixture!("phone_b_1024.private.pem"),
    modulus_bytes: 128,
};

/// PKCS#1 PEM wrapped at 76 characters a line, as some phone apps send it.
pub static PHONE_B_PKCS1_WRAPPED_76: PhoneKey = PhoneKey {
    name: "phone B, RSA-1024, PKCS#1 PEM wrapped at 76 columns",
    public_pem: fixture!("phone_b_1024.pkcs1-76.pub.pem"),
    private_pem: fixture!("phone_b_1024.private.pem"),
    modulus_bytes: 128,
};

pub static PHONE_C_2048: PhoneKey = PhoneKey {
    name: "phone C, RSA-2048, PKCS#1 PEM",
    public_pem: fixture!("phone_c_2048.pkcs1.pub.pem"),
    private_pem: fixture!("phone_c_2048.private.pem"),
    modulus_bytes: 256,
};

pub static PHONE_C_2048_SPKI: PhoneKey = PhoneKey {
    name: "phone C, RSA-2048, SPKI PEM",
    public_pem: fixture!("phone_c_2048.spki.pub.pem"),
    private_pem: fixture!("phone_c_2048.private.pem"),
    modulus_bytes: 256,
};

impl PhoneKey {
    fn private_key(&self) -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs1_pem(self.private_pem)
            .unwrap_or_else(|error| panic!("fixture {}: bad private key: {error}", self.name))
    }

    /// The Base64 `secure_code` as bytes; checks it is one RSA block for this key.
    #[track_caller]
    pub fn ciphertext(&self, secure_code: &str) -> Vec<u8> {
        let bytes = BASE64
            .decode(secure_code)
            .unwrap_or_else(|error| panic!("secure_code `{secure_code}` is not standard Base64: {error}"));
        assert_eq!(
            bytes.len(),
            self.modulus_bytes,
            "secure_code of {} must be {} bytes of ciphertext",
            self.name,
            self.modulus_bytes
        );
        bytes
    }

    /// What the phone app does: PKCS#1 v1.5 decryption of the token's `secure_code`.
    #[track_caller]
    pub fn decrypt(&self, secure_code: &str) -> Vec<u8> {
        let ciphertext = self.ciphertext(secure_code);
        self.private_key()
            .decrypt(Pkcs1v15Encrypt, &ciphertext)
            .unwrap_or_else(|error| panic!("{} cannot decrypt secure_code `{secure_code}`: {error}", self.name))
    }

    /// Raw RSA (no unpadding): the whole encryption block `00 02 PS 00 code`.
    #[track_caller]
    pub fn raw_block(&self, secure_code: &str) -> Vec<u8> {
        let ciphertext = self.ciphertext(secure_code);
        let key = self.private_key();
        let message = BigUint::from_bytes_be(&ciphertext).modpow(key.d(), key.n());
        let bytes = message.to_bytes_be();
        let mut block = vec![0_u8; key.size() - bytes.len()];
        block.extend_from_slice(&bytes);
        block
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Long (QR) radiocode: token uuid + lower-case hex of the decrypted secure code.
#[track_caller]
pub fn long_radiocode(token: &Value, key: &PhoneKey) -> String {
    let uuid = token["uuid"].as_str().expect("token uuid");
    let secure_code = token["secure_code"].as_str().expect("token secure_code");
    format!("{uuid}{}", hex(&key.decrypt(secure_code)))
}

/// Short (EAN/manual) radiocode of a plain-code token: plain code + the decrypted digits.
#[track_caller]
pub fn short_radiocode(token: &Value, key: &PhoneKey) -> String {
    let plain_code = token["plain_code"].as_str().expect("token plain_code");
    let secure_code = token["secure_code"].as_str().expect("token secure_code");
    let digits = String::from_utf8(key.decrypt(secure_code)).expect("plain-mode secure code is ASCII");
    format!("{plain_code}{digits}")
}

/// The same code with its first byte's lowest bit flipped: a wrong code of the right length.
pub fn corrupted(code: &[u8]) -> Vec<u8> {
    let mut wrong = code.to_vec();
    wrong[0] ^= 1;
    wrong
}
