//! Bitcoin signed messages, as Bitcoin Core's `signmessage`/`verifymessage` and bitcoinjs make
//! them (the Crypto Capital API authenticates with them: docs in `../shared/spec`, §5): the
//! "magic" double SHA-256 digest, 65-byte compact recoverable signatures in base64, and P2PKH
//! addresses. The curve maths is RustCrypto's `k256`, base58check is `bs58`'s; nothing here
//! computes on the curve itself.

use base64::Engine as _;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

/// What every signed message starts with: its length (24) and the text.
const MAGIC: &[u8] = b"\x18Bitcoin Signed Message:\n";
/// A compact signature: a header byte, then r and s.
const SIGNATURE_BYTES: usize = 65;
/// Header bytes 27–30: recovery id 0–3, uncompressed key; 31–34: the same, compressed key.
const HEADER_UNCOMPRESSED: u8 = 27;
const HEADER_COMPRESSED: u8 = 31;
/// The version byte of a mainnet P2PKH address (they start with "1").
const P2PKH_VERSION: u8 = 0x00;

/// Why a signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature is not base64")]
    NotBase64,
    #[error("signature is not 65 bytes")]
    Length,
    /// 35–42 are BIP-137's segwit variants, which this scheme does not have.
    #[error("signature header is not 27-34")]
    Header,
    #[error("signature does not recover a public key")]
    Unrecoverable,
    #[error("signature was made by another address")]
    WrongAddress,
}

/// Why a text is not a P2PKH address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is not base58check")]
    Encoding,
    #[error("address is not a mainnet P2PKH address")]
    Kind,
}

/// A mainnet P2PKH address, as its base58check text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(String);

impl Address {
    /// Check a text as an address (its checksum, version and length).
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let payload = bs58::decode(text).with_check(None).into_vec().map_err(|_| AddressError::Encoding)?;
        match payload.split_first() {
            Some((&P2PKH_VERSION, hash)) if hash.len() == 20 => Ok(Self(text.to_owned())),
            _ => Err(AddressError::Kind),
        }
    }

    /// The address of a public key in one of its two serialisations.
    pub fn of_key(key: &VerifyingKey, compressed: bool) -> Self {
        let point = key.to_encoded_point(compressed);
        let hash = Ripemd160::digest(Sha256::digest(point.as_bytes()));
        let mut payload = Vec::with_capacity(21);
        payload.push(P2PKH_VERSION);
        payload.extend_from_slice(&hash);
        Self(bs58::encode(payload).with_check().into_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The digest a message's signature signs: SHA-256 twice over the magic prefix, the message's
/// length as a CompactSize and the message.
pub fn magic_hash(message: &[u8]) -> [u8; 32] {
    let mut preimage = Vec::with_capacity(MAGIC.len() + 9 + message.len());
    preimage.extend_from_slice(MAGIC);
    compact_size(message.len() as u64, &mut preimage);
    preimage.extend_from_slice(message);
    Sha256::digest(Sha256::digest(&preimage)).into()
}

/// Bitcoin's variable-length integer.
fn compact_size(n: u64, out: &mut Vec<u8>) {
    match n {
        0..=0xFC => out.push(n as u8),
        0xFD..=0xFFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            out.push(0xFE);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xFF);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Verify a base64 compact signature of `message` by `address`: the key it recovers, serialised
/// as its header says, must have that address. High-S signatures are accepted (recovery works
/// either way; signers normalise to low S).
pub fn verify(address: &Address, message: &[u8], signature: &str) -> Result<(), SignatureError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(signature).map_err(|_| SignatureError::NotBase64)?;
    let bytes: [u8; SIGNATURE_BYTES] = bytes.try_into().map_err(|_| SignatureError::Length)?;
    let (compressed, recovery) = match bytes[0] {
        header @ HEADER_UNCOMPRESSED..=30 => (false, header - HEADER_UNCOMPRESSED),
        header @ HEADER_COMPRESSED..=34 => (true, header - HEADER_COMPRESSED),
        _ => return Err(SignatureError::Header),
    };
    let mut signature = Signature::from_slice(&bytes[1..]).map_err(|_| SignatureError::Unrecoverable)?;
    let mut recovery = RecoveryId::from_byte(recovery).ok_or(SignatureError::Header)?;
    if let Some(low) = signature.normalize_s() {
        // (r, n − s) recovers the same key from the point of the other y parity.
        signature = low;
        recovery = RecoveryId::new(!recovery.is_y_odd(), recovery.is_x_reduced());
    }
    let key = VerifyingKey::recover_from_prehash(&magic_hash(message), &signature, recovery)
        .map_err(|_| SignatureError::Unrecoverable)?;
    if Address::of_key(&key, compressed) == *address {
        Ok(())
    } else {
        Err(SignatureError::WrongAddress)
    }
}

/// A key that signs messages (the server's, for its notifications), with its compressed key's
/// address.
#[derive(Clone)]
pub struct MessageKey {
    key: SigningKey,
    address: Address,
}

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageKey").field("address", &self.address).finish_non_exhaustive()
    }
}

impl MessageKey {
    /// The key of a 32-byte secret; `None` when it is not a valid scalar (zero or ≥ n).
    pub fn from_secret(secret: &[u8; 32]) -> Option<Self> {
        let key = SigningKey::from_bytes(secret.into()).ok()?;
        let address = Address::of_key(key.verifying_key(), true);
        Some(Self { key, address })
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let address = Address::of_key(key.verifying_key(), true);
        Self { key, address }
    }

    /// The secret, to store the key.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Sign `message`: RFC 6979 nonce, low S, compressed-key header, base64.
    pub fn sign(&self, message: &[u8]) -> Result<String, SignatureError> {
        let (signature, recovery) =
            self.key.sign_prehash_recoverable(&magic_hash(message)).map_err(|_| SignatureError::Unrecoverable)?;
        let mut bytes = Vec::with_capacity(SIGNATURE_BYTES);
        bytes.push(HEADER_COMPRESSED + recovery.to_byte());
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn address(text: &str) -> Address {
        Address::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    const VIRES: &[u8] = b"vires is numeris";
    const SIG_1: &str = "G8JawPtQOrybrSP1WHQnQPr67B9S3qrxBrl1mlzoTJOSHEpmnF7D3+t+LX0Xei9J20B5AIdPbeL3AaTBZ4N3bY0=";
    const SIG_2: &str = "H8JawPtQOrybrSP1WHQnQPr67B9S3qrxBrl1mlzoTJOSHEpmnF7D3+t+LX0Xei9J20B5AIdPbeL3AaTBZ4N3bY0=";

    #[test]
    fn digests_match_the_published_vectors() {
        assert_eq!(hex(&magic_hash(b"")), "80e795d4a4caadd7047af389d9f7f220562feb6196032e2131e10563352c4bcc");
        assert_eq!(
            hex(&magic_hash(b"Vires is Numeris")),
            "f8a5affbef4a3241b19067aa694562f64f513310817297089a8929a930f4f933"
        );
        assert_eq!(
            hex(&magic_hash(b"tlgczpu91rw6zuxr")),
            "9934e75f7f7557f5b3bb2276445f6f098fd0123ff2107b963c823f8c1ec2b9b5"
        );
    }

    #[test]
    fn compact_size_takes_the_documented_widths() {
        let encoded = |n| {
            let mut out = Vec::new();
            compact_size(n, &mut out);
            out
        };
        assert_eq!(encoded(0xFC), [0xFC]);
        assert_eq!(encoded(0xFD), [0xFD, 0xFD, 0x00]);
        assert_eq!(encoded(0x1_0000), [0xFE, 0x00, 0x00, 0x01, 0x00]);
        assert_eq!(encoded(0x1_0000_0000), [0xFF, 0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn the_fact_sheets_vectors_verify_or_fail_as_listed() {
        // 1 and 2: one signature, uncompressed and compressed header.
        assert_eq!(verify(&address("16UwLL9Risc3QfPqBUvKofHmBQ7wMtjvM"), VIRES, SIG_1), Ok(()));
        assert_eq!(verify(&address("1PMycacnJaSqwwJqjawXBErnLsZ7RkXUAs"), VIRES, SIG_2), Ok(()));
        // 3: the compressed header does not verify for the uncompressed key's address.
        assert_eq!(
            verify(&address("16UwLL9Risc3QfPqBUvKofHmBQ7wMtjvM"), VIRES, SIG_2),
            Err(SignatureError::WrongAddress)
        );
        // 4: another message.
        assert_eq!(
            verify(&address("16UwLL9Risc3QfPqBUvKofHmBQ7wMtjvM"), b"foobar", SIG_1),
            Err(SignatureError::WrongAddress)
        );
        // 7: the D1 sample challenge signed with the test rig's key.
        let rig = "G7wHGsHdtI0Jpb6wXIWRnVJ7FvkKyn7CMO7mr/HnMToOUAzYxj+TWc45TlhcPKeW3zcfA4ewrsH+VbaWn2aupiQ=";
        assert_eq!(verify(&address("1HZwkjkeaoZfTSaJxDw6aKkxp45agDiEzN"), b"tlgczpu91rw6zuxr", rig), Ok(()));
    }

    #[test]
    fn signing_with_the_key_one_gives_the_published_signatures() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let key = MessageKey::from_secret(&one).unwrap_or_else(|| panic!("d = 1 is a key"));
        assert_eq!(key.address().as_str(), "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH");
        // 6: compressed header 32.
        let signed = key.sign(VIRES).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(signed, "IF8nHqFr3K2UKYahhX3soVeoW8W1ECNbr0wfck7lzyXjCS5Q16Ek45zyBuy1Fiy9sTPKVgsqqOuPvbycuVSSVl8=");
        // 5: the same signature with the uncompressed header (28) verifies for that address.
        let uncompressed = "HF8nHqFr3K2UKYahhX3soVeoW8W1ECNbr0wfck7lzyXjCS5Q16Ek45zyBuy1Fiy9sTPKVgsqqOuPvbycuVSSVl8=";
        assert_eq!(verify(&address("1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm"), VIRES, uncompressed), Ok(()));
        assert_eq!(verify(key.address(), VIRES, &signed), Ok(()));
    }

    #[test]
    fn malformed_signatures_are_refused_with_their_reason() {
        let who = address("16UwLL9Risc3QfPqBUvKofHmBQ7wMtjvM");
        assert_eq!(verify(&who, VIRES, "not base64!"), Err(SignatureError::NotBase64));
        assert_eq!(verify(&who, VIRES, "AAAA"), Err(SignatureError::Length));
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(SIG_1).unwrap_or_default();
        bytes[0] = 35; // a BIP-137 segwit header
        let segwit = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(verify(&who, VIRES, &segwit), Err(SignatureError::Header));
        bytes[0] = 27;
        bytes[1..33].fill(0); // r = 0
        let zero = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(verify(&who, VIRES, &zero), Err(SignatureError::Unrecoverable));
    }

    #[test]
    fn a_high_s_signature_verifies_like_its_low_s_twin() {
        let key = MessageKey::generate();
        let signed = key.sign(b"challenge").unwrap_or_else(|error| panic!("{error}"));
        let bytes = base64::engine::general_purpose::STANDARD.decode(&signed).unwrap_or_default();
        let low = Signature::from_slice(&bytes[1..]).unwrap_or_else(|error| panic!("{error}"));
        // n − s, and the other parity.
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap_or_else(|error| panic!("{error}"));
        let mut twin = vec![HEADER_COMPRESSED + ((bytes[0] - HEADER_COMPRESSED) ^ 1)];
        twin.extend_from_slice(&high.to_bytes());
        let twin = base64::engine::general_purpose::STANDARD.encode(twin);
        assert_eq!(verify(key.address(), b"challenge", &twin), Ok(()));
    }

    #[test]
    fn addresses_are_checked() {
        assert!(Address::parse("1HZwkjkeaoZfTSaJxDw6aKkxp45agDiEzN").is_ok());
        assert_eq!(Address::parse("1HZwkjkeaoZfTSaJxDw6aKkxp45agDiEzM"), Err(AddressError::Encoding));
        assert_eq!(Address::parse("0OIl"), Err(AddressError::Encoding));
        // A P2SH address (version 5) is not a key's address.
        assert_eq!(Address::parse("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"), Err(AddressError::Kind));
    }
}
