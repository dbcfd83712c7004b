//! The fixture file that `setup` writes and the scenarios read: credentials, phones (with their
//! private keys, so the load generator can decrypt secure codes as a phone app would) and ATMs.

use std::path::Path;

use anyhow::Context as _;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::{Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest as _, Sha256};
use serde::{Deserialize, Serialize};

/// Environment variable naming the fixture file the scenarios read.
pub const FIXTURE_ENV: &str = "CASHGRID_LOAD_FIXTURE";
/// Fixture file used when the variable is not set.
pub const FIXTURE_DEFAULT: &str = "load-fixture.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub apikey: String,
    pub apisecret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phone {
    pub uuid: String,
    /// Index into [`Fixture::keys`].
    pub key: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fixture {
    /// The server the devices were registered on (informational; goose takes `--host`).
    pub host: String,
    /// The issuing bank's e-mail (customer created through the cashgrid CLI).
    pub bank: String,
    pub key_bits: usize,
    pub token_api: Credentials,
    pub cash_api: Credentials,
    pub phones: Vec<Phone>,
    /// ATM device uuids, registered through the Cash API.
    pub atms: Vec<String>,
    /// Private keys of the phones, PKCS#1 PEM, copied from `fixtures/`.
    pub keys: Vec<String>,
    /// The ledger scenarios' accounts, when `setup --ledger-accounts N` made them.
    #[serde(default)]
    pub ledger: Option<LedgerFixture>,
}

/// Funded ledger accounts of one currency, and one hot account every `ledger_hot_account`
/// transfer credits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerFixture {
    /// `ledger-operator` credentials (they reach every account).
    pub operator: Credentials,
    pub accounts: Vec<String>,
    pub hot: String,
    /// Minor units each account was funded with.
    pub funded: u64,
}

impl Fixture {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// A fixture with its keys parsed once, shared by every goose user.
pub struct Context {
    pub fixture: Fixture,
    pub keys: Vec<RsaPrivateKey>,
}

impl Context {
    pub fn new(fixture: Fixture) -> anyhow::Result<Self> {
        anyhow::ensure!(!fixture.phones.is_empty(), "the fixture has no phones");
        anyhow::ensure!(!fixture.atms.is_empty(), "the fixture has no ATMs");
        let keys = fixture
            .keys
            .iter()
            .enumerate()
            .map(|(index, pem)| {
                RsaPrivateKey::from_pkcs1_pem(pem).with_context(|| format!("parsing private key {index}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for phone in &fixture.phones {
            anyhow::ensure!(phone.key < keys.len(), "phone {} names a missing key", phone.uuid);
        }
        Ok(Self { fixture, keys })
    }

    /// What the phone app does: decrypt the Base64 secure code and build the QR radiocode,
    /// token uuid followed by the hex of the code bytes.
    pub fn radiocode(&self, phone: &Phone, token_uuid: &str, secure_code_base64: &str) -> anyhow::Result<String> {
        use base64::Engine as _;
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(secure_code_base64)
            .context("secure_code is not Base64")?;
        let key = self.keys.get(phone.key).context("phone key missing")?;
        let code = key.decrypt(Pkcs1v15Encrypt, &ciphertext).context("decrypting the secure code")?;
        let mut radiocode = String::with_capacity(token_uuid.len() + code.len() * 2);
        radiocode.push_str(token_uuid);
        for byte in code {
            radiocode.push_str(&format!("{byte:02x}"));
        }
        Ok(radiocode)
    }

    /// What the phone app does with a trigger code: sign `triggercode + radiocode` with its
    /// private key (RSA PKCS#1 v1.5 over SHA-256), Base64.
    pub fn trigger_signature(&self, phone: &Phone, triggercode: &str, radiocode: &str) -> anyhow::Result<String> {
        use base64::Engine as _;
        let key = self.keys.get(phone.key).context("phone key missing")?;
        let digest = Sha256::digest(format!("{triggercode}{radiocode}").as_bytes());
        let signature = key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).context("signing the trigger")?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature))
    }
}
