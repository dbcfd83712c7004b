//! Secrets at rest: the store and the logs never hold a secure code (or an API secret) in
//! cleartext, and secure codes are encrypted with random PKCS#1 v1.5 padding.
//!
//! The store is inspected from outside: on PostgreSQL every row of every table is read as JSON
//! text; on SQLite (no SQLite client among the dev-dependencies) the raw bytes of every file in
//! the data directory, WAL included, are searched.

use std::fs;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::api::Creds;
use crate::flows::Phone;
use crate::harness::{connect, Backend, TestEnv};
use crate::phone::{corrupted, hex, long_radiocode, short_radiocode, PHONE_A_PKCS1};

/// Name of the [`Secret`] that is no secret: a token refname the store must contain.
const CONTROL: &str = "control refname";

/// A secret and the forms in which it must not appear anywhere.
struct Secret {
    what: String,
    forms: Vec<Vec<u8>>,
}

/// Tokens in every code-bearing state, plus their codes and the API secrets used.
async fn issue_secrets(env: &TestEnv) -> Vec<Secret> {
    let scene = env.scene("bank@example.com").await;
    let plain_customer = env.customer("plain@example.com");
    env.set_param("plain@example.com", "USE_PLAIN_CODES", "true");
    let plain = env.scene_for(plain_customer).await;

    let mut secrets = Vec::new();
    let mut add_code = |what: &str, token: &serde_json::Value, phone: &Phone| {
        let code = phone.key.decrypt(token["secure_code"].as_str().expect("secure_code"));
        let mut forms = vec![
            hex(&code).into_bytes(),
            hex(&code).to_ascii_uppercase().into_bytes(),
            BASE64.encode(&code).trim_end_matches('=').as_bytes().to_vec(),
            long_radiocode(token, phone.key).into_bytes(),
        ];
        if token["plain_code"].is_string() {
            forms.push(short_radiocode(token, phone.key).into_bytes());
        } else {
            // Six random bytes: finding them by chance in a small database is negligible.
            forms.push(code);
        }
        secrets.push(Secret { what: format!("secure code of the {what} token"), forms });
    };

    let open = env.issue(&scene.bank, &scene.phone, 1000).await;
    add_code("OPEN", &open, &scene.phone);
    let locked = env.issue(&scene.bank, &scene.phone, 2000).await;
    env.claim_ok(&scene.cash, &scene.atm, &locked, &scene.phone).await;
    add_code("LOCKED", &locked, &scene.phone);
    let second_phone = env.register_phone(&scene.bank, &PHONE_A_PKCS1, "phone2").await;
    let rejected = env.issue(&scene.bank, &second_phone, 3000).await;
    let code = second_phone.key.decrypt(rejected["secure_code"].as_str().expect("secure_code"));
    let uuid = rejected["uuid"].as_str().expect("uuid");
    env.claim(&scene.cash, &scene.atm, &format!("{uuid}{}", hex(&corrupted(&code)))).await.assert_status(403);
    add_code("REJECTED", &rejected, &second_phone);
    let plain_open = env.issue(&plain.bank, &plain.phone, 4000).await;
    add_code("plain-code OPEN", &plain_open, &plain.phone);
    let plain_locked = env.issue(&plain.bank, &plain.phone, 5000).await;
    let reply = env.claim(&plain.cash, &plain.atm, &short_radiocode(&plain_locked, plain.phone.key)).await;
    reply.ok();
    add_code("plain-code LOCKED", &plain_locked, &plain.phone);

    // A positive control: a value the store must hold, proving the search reads the real data.
    let control = format!("control-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let body = serde_json::json!({"device_uuid": scene.phone.uuid, "amount": 1, "symbol": "EUR", "refname": control});
    env.issue_with(&scene.bank, body).await.ok();
    secrets.push(Secret { what: CONTROL.to_owned(), forms: vec![control.into_bytes()] });

    for (what, creds) in [("token-api", &scene.bank), ("cash-api", &scene.cash), ("plain token-api", &plain.bank)] {
        let Creds { apisecret, .. } = creds;
        secrets.push(Secret { what: format!("{what} API secret"), forms: vec![apisecret.clone().into_bytes()] });
    }
    secrets
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

/// Every `(place, content)` the store holds.
async fn store_contents(env: &TestEnv) -> Vec<(String, Vec<u8>)> {
    match env.backend() {
        Backend::Sqlite => files_under(&env.store.data_dir),
        Backend::Postgres => {
            let url = &env.store.database.as_ref().expect("a PostgreSQL database").url;
            let client = connect(url).await.unwrap_or_else(|error| panic!("connect to {url}: {error}"));
            let tables = client
                .query(
                    "SELECT table_schema, table_name FROM information_schema.tables \
                     WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
                    &[],
                )
                .await
                .expect("list tables");
            assert!(!tables.is_empty(), "the server created no tables in {url}");
            let mut contents = Vec::new();
            for table in tables {
                let (schema, name): (String, String) = (table.get(0), table.get(1));
                let rows = client
                    .query(&format!("SELECT row_to_json(t)::text FROM \"{schema}\".\"{name}\" t"), &[])
                    .await
                    .unwrap_or_else(|error| panic!("read {schema}.{name}: {error}"));
                let text: Vec<String> = rows.iter().map(|row| row.get::<_, String>(0)).collect();
                contents.push((format!("table {schema}.{name}"), text.join("\n").into_bytes()));
            }
            contents
        }
    }
}

fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut contents = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|error| panic!("read {}: {error}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            contents.extend(files_under(&path));
        } else if let Ok(bytes) = fs::read(&path) {
            contents.push((format!("file {}", path.display()), bytes));
        }
    }
    contents
}

/// Where a secret (never the control) appears: `(place, secret, form)` for each finding.
fn leaks(secrets: &[Secret], contents: &[(String, Vec<u8>)]) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for secret in secrets.iter().filter(|secret| secret.what != CONTROL) {
        for form in &secret.forms {
            for (place, content) in contents {
                if contains(content, form) {
                    found.push((place.clone(), secret.what.clone(), String::from_utf8_lossy(form).into_owned()));
                }
            }
        }
    }
    found
}

#[track_caller]
fn assert_absent(secrets: &[Secret], contents: &[(String, Vec<u8>)]) {
    if let Some((place, what, form)) = leaks(secrets, contents).first() {
        panic!("{place} contains the {what} in cleartext (as `{form}`)");
    }
}

pub async fn secure_codes_and_api_secrets_are_never_stored_in_cleartext(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let secrets = issue_secrets(&env).await;
    let contents = store_contents(&env).await;
    let control = secrets.iter().find(|secret| secret.what == CONTROL).expect("a control value");
    assert!(
        contents.iter().any(|(_, content)| contains(content, &control.forms[0])),
        "the search found not even a token's refname: it does not read where the server stores data"
    );
    assert_absent(&secrets, &contents);
}

/// At debug level, the most the server ever logs. Positive controls show that the scan would
/// see a secret there: the log holds debug records (the access log), on PostgreSQL the values
/// the server sends to the database (the driver logs statement parameters at debug level, so
/// the control refname must be found, and no code or API secret is ever such a value), and
/// every form of every secret, planted into the real log, is found.
pub async fn secure_codes_and_api_secrets_never_appear_in_server_logs(backend: Backend) {
    let env = TestEnv::start_with_env(backend, &[], &[("RUST_LOG", "debug")]).await;
    let secrets = issue_secrets(&env).await;
    let logs = files_under(&env.store.logs_dir);
    assert_absent(&secrets, &logs);

    let log_text: Vec<u8> = logs.iter().flat_map(|(_, content)| content.iter().copied()).collect();
    let debug_access_record = String::from_utf8_lossy(&log_text)
        .lines()
        .any(|line| line.contains("DEBUG") && line.contains("/dnapi/token/v1/tokens"));
    assert!(
        debug_access_record,
        "no debug access-log record of a token create: is RUST_LOG=debug reaching the server, and is this its log?"
    );
    if backend == Backend::Postgres {
        let control = secrets.iter().find(|secret| secret.what == CONTROL).expect("a control value");
        assert!(
            contains(&log_text, &control.forms[0]),
            "the control refname, a statement parameter, is not in the debug log: the scan does not see what the server sends to the database"
        );
    }
    for secret in secrets.iter().filter(|secret| secret.what != CONTROL) {
        for form in &secret.forms {
            let planted = [log_text.as_slice(), b"\nDEBUG planted: ", form, b"\n"].concat();
            let found = leaks(std::slice::from_ref(secret), &[("planted log".to_owned(), planted)]);
            assert!(!found.is_empty(), "the scan misses the {} planted into the log", secret.what);
        }
    }
}

/// PKCS#1 v1.5 type-2 padding with random non-zero bytes, so equal codes never give equal
/// ciphertexts. (The same code is never encrypted twice through the API, so the test opens the
/// RSA blocks with the phone's private key and checks the padding itself is random.)
pub async fn secure_codes_are_encrypted_with_random_padding(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let phone = env.register_phone(&scene.bank, &PHONE_A_PKCS1, "phone2").await;
    let mut paddings = Vec::new();
    let mut ciphertexts = Vec::new();
    for _ in 0..2 {
        let token = env.issue(&scene.bank, &phone, 1000).await;
        let secure_code = token["secure_code"].as_str().expect("secure_code");
        let block = phone.key.raw_block(secure_code);
        assert_eq!(&block[..2], &[0, 2], "a PKCS#1 v1.5 encryption block starts 00 02: {}", hex(&block));
        let separator = 2 + block[2..].iter().position(|byte| *byte == 0).expect("a 00 separator");
        let padding = block[2..separator].to_vec();
        assert!(padding.len() >= 8, "at least 8 padding bytes: {}", hex(&block));
        assert_eq!(&block[separator + 1..], phone.key.decrypt(secure_code).as_slice());
        assert!(padding.iter().any(|byte| *byte != 0xff), "padding must be random, not all FF: {}", hex(&block));
        paddings.push(padding);
        ciphertexts.push(secure_code.to_owned());
    }
    assert_ne!(paddings[0], paddings[1], "each encryption draws fresh padding");
    assert_ne!(ciphertexts[0], ciphertexts[1]);
}
