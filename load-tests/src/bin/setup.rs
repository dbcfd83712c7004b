//! Prepare a running cashgrid for the load scenarios: a bank with Token API and Cash API
//! credentials (created with the `cashgrid` CLI on the server's own store), phones registered
//! with the shipped test keys, and ATMs. Writes everything to a fixture file (JSON).
//!
//! ```sh
//! cargo run --release --bin setup -- --host http://127.0.0.1:8080 --data-dir ../data
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use cashgrid_load_tests::fixture::{Credentials, Fixture, LedgerFixture, Phone, FIXTURE_DEFAULT};
use clap::Parser;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use serde_json::{json, Value};

/// Test keys shipped per size in `fixtures/` (`phone-<bits>-<n>.pem`).
const KEYS_PER_SIZE: usize = 4;
/// Decryptions timed per key size to report what the load generator pays per secure code.
const DECRYPT_SAMPLES: usize = 200;
/// Most ledger accounts one run may open.
const LEDGER_ACCOUNTS_MAX: usize = 10_000;
/// Minor units each ledger account is funded with: far more than any run moves.
const LEDGER_FUNDING: u64 = 1_000_000_000_000;
/// Most phones or ATMs one run may register.
const DEVICES_MAX: usize = 10_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(about = "Create the customers, credentials and devices the load scenarios use")]
struct Args {
    /// The running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    host: String,
    /// The server's data directory (the CLI needs the same store and server key).
    #[arg(long)]
    data_dir: PathBuf,
    /// The server's PostgreSQL URL, if it runs on PostgreSQL.
    #[arg(long)]
    database_url: Option<String>,
    /// The cashgrid binary.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/cashgrid"))]
    cashgrid: PathBuf,
    /// Phones to register (they share the shipped keys).
    #[arg(long, default_value_t = 64)]
    phones: usize,
    /// ATMs to register; goose users share them round-robin.
    #[arg(long, default_value_t = 64)]
    atms: usize,
    /// Phone key size: 1024 (cheap to decrypt, for peak runs) or 2048.
    #[arg(long, default_value_t = 1024)]
    key_bits: usize,
    /// Directory of the shipped phone keys.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))]
    fixtures: PathBuf,
    /// The bank's e-mail; a fresh one per run by default.
    #[arg(long)]
    bank: Option<String>,
    /// Turn on 12-digit plain codes for the bank (USE_PLAIN_CODES).
    #[arg(long)]
    plain_codes: bool,
    /// Ledger accounts to open and fund for the ledger scenarios (0: none).
    #[arg(long, default_value_t = 100)]
    ledger_accounts: usize,
    /// Where to write the fixture.
    #[arg(long, default_value = FIXTURE_DEFAULT)]
    out: PathBuf,
}

impl Args {
    /// Run one `cashgrid` CLI command on the server's store; it prints one JSON object.
    fn cli(&self, arguments: &[&str]) -> anyhow::Result<Value> {
        let mut command = Command::new(&self.cashgrid);
        command.arg("--data-dir").arg(&self.data_dir);
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command.args(arguments).env("RUST_LOG", "warn");
        let output = command.output().with_context(|| format!("running {}", self.cashgrid.display()))?;
        if !output.status.success() {
            bail!("cashgrid {}: {}", arguments.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        }
        serde_json::from_slice(&output.stdout).with_context(|| format!("cashgrid {}: output is not JSON", arguments.join(" ")))
    }

    fn credentials(&self, bank: &str, scope: &str) -> anyhow::Result<Credentials> {
        let access = self.cli(&["access", "create", "--customer", bank, "--scope", scope])?;
        let text = |key: &str| access.get(key).and_then(Value::as_str).map(str::to_owned);
        match (text("apikey"), text("apisecret")) {
            (Some(apikey), Some(apisecret)) => Ok(Credentials { apikey, apisecret }),
            _ => bail!("access create printed no apikey/apisecret"),
        }
    }
}

fn read_keys(directory: &Path, bits: usize) -> anyhow::Result<Vec<String>> {
    (1..=KEYS_PER_SIZE)
        .map(|n| {
            let path = directory.join(format!("phone-{bits}-{n}.pem"));
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        })
        .collect()
}

async fn register(
    client: &reqwest::Client,
    url: &str,
    credentials: &Credentials,
    body: &Value,
) -> anyhow::Result<String> {
    let answer = post_json(client, url, credentials, body).await?;
    answer.get("uuid").and_then(Value::as_str).map(str::to_owned).with_context(|| format!("POST {url}: no uuid"))
}

/// `POST` a JSON body with the credentials' headers; the answer, which must be a success.
async fn post_json(
    client: &reqwest::Client,
    url: &str,
    credentials: &Credentials,
    body: &Value,
) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .header("DN-API-KEY", &credentials.apikey)
        .header("DN-API-SECRET", &credentials.apisecret)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {url}: {status} {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON: {text}"))
}

/// An outside rail, a hot account and `count` customer accounts, each funded from the rail.
async fn ledger_accounts(
    client: &reqwest::Client,
    host: &str,
    operator: Credentials,
    count: usize,
) -> anyhow::Result<LedgerFixture> {
    let accounts_url = format!("{host}/ledger/v1/accounts");
    let open = |body: Value| {
        let (url, operator) = (accounts_url.clone(), operator.clone());
        async move {
            let answer = post_json(client, &url, &operator, &body).await?;
            answer["id"].as_str().map(str::to_owned).context("an opened account without id")
        }
    };
    let rail =
        open(json!({"currency": "EUR", "kind": "external_rail", "flags": {"debits_must_not_exceed_credits": false}}))
            .await?;
    let hot = open(json!({"currency": "EUR", "kind": "escrow"})).await?;
    let mut accounts = Vec::with_capacity(count);
    for _ in 0..count {
        accounts.push(open(json!({"currency": "EUR"})).await?);
    }
    for chunk in accounts.chunks(1_000) {
        let transfers: Vec<Value> = chunk
            .iter()
            .map(|account| json!({"debit_account_id": rail, "credit_account_id": account, "amount": LEDGER_FUNDING}))
            .collect();
        let answer =
            post_json(client, &format!("{host}/ledger/v1/transfers/batch"), &operator, &json!({"transfers": transfers}))
                .await?;
        let results = answer["results"].as_array().context("a batch answer without results")?;
        if !results.iter().all(|result| result["result"] == "created") {
            bail!("funding the ledger accounts: {answer}");
        }
    }
    eprintln!("setup: {count} ledger accounts funded with {LEDGER_FUNDING} minor units each, and a hot account");
    Ok(LedgerFixture { operator, accounts, hot, funded: LEDGER_FUNDING })
}

/// Mean time to decrypt a 6-byte secure code with `key`, as the scenarios do, in microseconds.
fn decrypt_cost_us(key: &RsaPrivateKey) -> anyhow::Result<f64> {
    let ciphertext = key.to_public_key().encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, b"123456")?;
    let started = std::time::Instant::now();
    for _ in 0..DECRYPT_SAMPLES {
        key.decrypt(Pkcs1v15Encrypt, &ciphertext)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / DECRYPT_SAMPLES as f64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.phones == 0 || args.atms == 0 || args.phones > DEVICES_MAX || args.atms > DEVICES_MAX {
        bail!("--phones and --atms must be between 1 and {DEVICES_MAX}");
    }
    if args.ledger_accounts > LEDGER_ACCOUNTS_MAX {
        bail!("--ledger-accounts must be at most {LEDGER_ACCOUNTS_MAX}");
    }
    if args.key_bits != 1024 && args.key_bits != 2048 {
        bail!("--key-bits must be 1024 or 2048");
    }
    let keys = read_keys(&args.fixtures, args.key_bits)?;
    let private_keys = keys
        .iter()
        .map(|pem| RsaPrivateKey::from_pkcs1_pem(pem).context("parsing a fixture key"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let public_keys = private_keys
        .iter()
        .map(|key| key.to_public_key().to_pkcs1_pem(LineEnding::LF).context("encoding a public key"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(key) = private_keys.first() {
        eprintln!("setup: decrypting one secure code with a {}-bit key takes {:.0} µs here", args.key_bits, decrypt_cost_us(key)?);
    }

    let bank = args.bank.clone().unwrap_or_else(|| format!("load-bank-{}@example.com", uuid::Uuid::new_v4().simple()));
    args.cli(&["customer", "create", "--email", &bank, "--name", "Load test bank"])?;
    let token_api = args.credentials(&bank, "token-api")?;
    let cash_api = args.credentials(&bank, "cash-api")?;
    if args.plain_codes {
        args.cli(&["param", "set", "--customer", &bank, "--key", "USE_PLAIN_CODES", "--value", "true"])?;
    }

    let host = args.host.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    let mut phones = Vec::with_capacity(args.phones);
    for n in 0..args.phones {
        let key = n % public_keys.len();
        let body = json!({ "pubkey": public_keys[key], "refname": format!("load-phone-{n}") });
        let uuid = register(&client, &format!("{host}/dnapi/token/v1/devices"), &token_api, &body).await?;
        phones.push(Phone { uuid, key });
    }
    let mut atms = Vec::with_capacity(args.atms);
    for n in 0..args.atms {
        let body = json!({ "refname": format!("load-atm-{n}") });
        atms.push(register(&client, &format!("{host}/dnapi/cash/v1/devices"), &cash_api, &body).await?);
    }

    let ledger = match args.ledger_accounts {
        0 => None,
        count => {
            let operator = args.credentials(&bank, "ledger-operator")?;
            Some(ledger_accounts(&client, &host, operator, count).await?)
        }
    };
    let fixture = Fixture { host, bank, key_bits: args.key_bits, token_api, cash_api, phones, atms, keys, ledger };
    fixture.save(&args.out)?;
    eprintln!(
        "setup: bank {} with {} phones ({}-bit keys) and {} ATMs written to {}",
        fixture.bank,
        fixture.phones.len(),
        fixture.key_bits,
        fixture.atms.len(),
        args.out.display()
    );
    Ok(())
}
