//! Admin (portal) API: what a customer manages in the portal — API credentials, parameters,
//! accounts, devices — and what it reads: token statistics and the journal (spec §4). Another
//! customer's session sees none of it. Secrets stay sealed or hashed in the store.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::admin::{affected_rows, assert_empty_ok, jwt_of, Portal};
use crate::api::Creds;
use crate::flows::{uuid_of, TOKEN_DEVICES};
use crate::harness::{connect, Backend, TestEnv};
use crate::phone::PHONE_C_2048;
use crate::wire::{assert_unauthorized, ErrorMode, DEVICE_KEYS};

const ACCESS_KEYS: [&str; 7] = ["id", "customer_id", "created", "scope", "apikey", "refname", "info"];
const REVEALED_KEYS: [&str; 8] = ["id", "customer_id", "created", "scope", "apikey", "apisecret", "refname", "info"];
const ACCOUNT_KEYS: [&str; 7] = ["id", "customer_id", "value", "type", "default", "symbol", "refname"];

/// Credentials made in the portal, with the secret revealed by password.
async fn portal_credentials(portal: &Portal<'_>, scope: &str, password: &str) -> (i64, Creds) {
    let created = portal.post("/access", json!({ "scope": scope })).await;
    assert_eq!(created.keys(), ACCESS_KEYS, "no secret on creation: {}", created.describe());
    let id = created.json["id"].as_i64().expect("access id");
    let revealed = portal.put(&format!("/access/{id}"), json!({ "password": password })).await;
    assert_eq!(revealed.keys(), REVEALED_KEYS, "{}", revealed.describe());
    let creds = Creds {
        apikey: revealed.json["apikey"].as_str().unwrap().to_owned(),
        apisecret: revealed.json["apisecret"].as_str().unwrap().to_owned(),
    };
    (id, creds)
}

pub async fn api_credentials_are_created_revealed_and_deleted(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let bank = env.portal_as("bank@example.com", false).await;
    let other = env.portal_as("other@example.com", false).await;
    let mode = ErrorMode::Original;

    mode.assert_business_error(&bank.post("/access", json!({"scope": "bogus"})).await, "Unknown scope: bogus");
    mode.assert_business_error(&bank.post("/access", json!({})).await, "Unknown scope: undefined");

    let created = bank.post("/access", json!({"scope": "token-api"})).await;
    assert_eq!(created.keys(), ACCESS_KEYS, "{}", created.describe());
    assert_eq!(created.json["scope"], "token-api");
    assert_eq!(created.json["apikey"].as_str().unwrap().len(), 64);
    assert_eq!((created.json["refname"].clone(), created.json["info"].clone()), (Value::Null, Value::Null));
    let id = created.json["id"].as_i64().unwrap();
    crate::wire::assert_recent_timestamp(&created.json["created"], "access.created");

    let listed = bank.get("/access?scope=token-api").await;
    assert_eq!(listed.list().len(), 1);
    assert_eq!(listed.element_keys()[0], ACCESS_KEYS);
    assert!(bank.get("/access").await.list().is_empty(), "no scope, no rows");
    assert!(bank.get("/access?scope=cash-api").await.list().is_empty());
    assert!(other.get("/access?scope=token-api").await.list().is_empty(), "another customer's credentials");

    mode.assert_business_error(
        &bank.put(&format!("/access/{id}"), json!({"password": "wrong"})).await,
        "Sorry, wrong password",
    );
    let revealed = bank.put(&format!("/access/{id}"), json!({"password": "password-of-test"})).await;
    assert_eq!(revealed.keys(), REVEALED_KEYS, "{}", revealed.describe());
    let creds = Creds {
        apikey: created.json["apikey"].as_str().unwrap().to_owned(),
        apisecret: revealed.json["apisecret"].as_str().unwrap().to_owned(),
    };
    assert_eq!(creds.apisecret.len(), 64);
    assert_empty_ok(&other.put(&format!("/access/{id}"), json!({"password": "password-of-test"})).await);

    // The revealed pair works on the Token API...
    env.register_phone(&creds, &PHONE_C_2048, "phone1").await;
    env.api.get(TOKEN_DEVICES, &creds).await.assert_status(200);
    // ...until its owner deletes it: then at once no more.
    assert_eq!(affected_rows(&other.delete(&format!("/access/{id}")).await), 0);
    env.api.get(TOKEN_DEVICES, &creds).await.assert_status(200);
    assert_eq!(affected_rows(&bank.delete(&format!("/access/{id}")).await), 1);
    assert_unauthorized(&env.api.get(TOKEN_DEVICES, &creds).await);
    assert!(bank.get("/access?scope=token-api").await.list().is_empty());

    // CLI-made credentials can be revealed in the portal too.
    let cli = env.access("bank@example.com", "cash-api");
    let rows = bank.get("/access?scope=cash-api").await.list();
    let cli_id = rows[0]["id"].as_i64().unwrap();
    let revealed = bank.put(&format!("/access/{cli_id}"), json!({"password": "password-of-test"})).await;
    assert_eq!(revealed.json["apisecret"], cli.apisecret.as_str());
}

/// A parameter's value: 200 with the JSON value, `null` when there is none.
#[track_caller]
fn param(reply: &crate::api::Reply) -> Value {
    reply.assert_status(200);
    serde_json::from_str(&reply.text).unwrap_or_else(|_| panic!("not JSON: {}", reply.describe()))
}

pub async fn parameters_switch_plain_codes_on_and_off(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let bank = env.portal_as("bank@example.com", false).await;
    let other = env.portal_as("other@example.com", false).await;
    let (_, creds) = portal_credentials(&bank, "token-api", "password-of-test").await;
    let phone = env.register_phone(&creds, &PHONE_C_2048, "phone1").await;

    assert_eq!(param(&bank.get("/params/USE_PLAIN_CODES").await), Value::Null);
    assert!(env.issue(&creds, &phone, 100).await["plain_code"].is_null());

    assert_eq!(affected_rows(&bank.put("/params/USE_PLAIN_CODES", json!({})).await), 1);
    assert_eq!(param(&bank.get("/params/USE_PLAIN_CODES").await), json!({}));
    assert_eq!(param(&other.get("/params/USE_PLAIN_CODES").await), Value::Null, "parameters are per customer");
    let plain = env.issue(&creds, &phone, 100).await;
    let code = plain["plain_code"].as_str().unwrap_or_else(|| panic!("plain code expected: {plain}"));
    assert!(code.len() == 6 && code.bytes().all(|byte| byte.is_ascii_digit()), "{plain}");

    let stored = json!({"nested": [1, "two", {"three": 3}]});
    bank.put("/params/custom", stored.clone()).await.ok();
    assert_eq!(param(&bank.get("/params/custom").await), stored);

    assert_eq!(affected_rows(&bank.delete("/params/USE_PLAIN_CODES").await), 1);
    assert_eq!(affected_rows(&bank.delete("/params/USE_PLAIN_CODES").await), 0);
    assert_eq!(param(&bank.get("/params/USE_PLAIN_CODES").await), Value::Null);
    assert!(env.issue(&creds, &phone, 100).await["plain_code"].is_null(), "deleting the parameter turns it off");
}

pub async fn accounts_keep_exactly_one_default(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let bank = env.portal_as("bank@example.com", false).await;
    let other = env.portal_as("other@example.com", false).await;
    let mode = ErrorMode::Original;

    let first = json!({"value": "DE001", "type": "BANKACCOUNT", "default": 0, "symbol": "EUR", "refname": "main"});
    assert_empty_ok(&bank.post("/accounts", first).await);
    let second = json!({"value": "DE002", "type": "BANKACCOUNT", "default": 1, "symbol": "EUR", "refname": "second"});
    assert_empty_ok(&bank.post("/accounts", second).await);
    let listed = bank.get("/accounts").await;
    let accounts = listed.list();
    assert_eq!(listed.element_keys()[0], ACCOUNT_KEYS);
    let defaults: Vec<(Value, Value)> = accounts.iter().map(|a| (a["value"].clone(), a["default"].clone())).collect();
    assert_eq!(
        defaults,
        [(json!("DE001"), json!(1)), (json!("DE002"), json!(0))],
        "a new default does not take over while another exists"
    );
    let (first_id, second_id) = (accounts[0]["id"].as_i64().unwrap(), accounts[1]["id"].as_i64().unwrap());

    let mut switch = accounts[1].clone();
    switch["default"] = json!(1);
    assert_empty_ok(&bank.put(&format!("/accounts/{second_id}"), switch.clone()).await);
    let defaults = bank.get("/accounts?default=1").await.list();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0]["id"], second_id, "PUT with default 1 switches the default");
    assert_eq!(bank.get("/accounts?default=0").await.list()[0]["id"], first_id);

    mode.assert_business_error(
        &bank.put(&format!("/accounts/{first_id}"), switch.clone()).await,
        "Cannot update account. ID mismatch!",
    );
    // An account never moves to another customer (the original wrote customer_id).
    let other_id = other.claims()["id"].clone();
    let mut moved = switch.clone();
    moved["customer_id"] = other_id;
    moved["refname"] = json!("renamed");
    assert_empty_ok(&bank.put(&format!("/accounts/{second_id}"), moved).await);
    let account = bank.get(&format!("/accounts/{second_id}")).await;
    assert_eq!(account.ok()["refname"], "renamed");
    assert_eq!(account.json["customer_id"], bank.claims()["id"]);

    // Another customer neither sees nor changes them (the original showed any account by id).
    assert_empty_ok(&other.get(&format!("/accounts/{second_id}")).await);
    assert!(other.get("/accounts").await.list().is_empty());
    let mut hijack = switch.clone();
    hijack["value"] = json!("XX999");
    assert_empty_ok(&other.put(&format!("/accounts/{second_id}"), hijack).await);
    assert_empty_ok(&other.delete(&format!("/accounts/{second_id}")).await);
    assert_eq!(bank.get(&format!("/accounts/{second_id}")).await.ok()["value"], "DE002");

    // Deleting the default makes the remaining account the default.
    assert_empty_ok(&bank.delete(&format!("/accounts/{second_id}")).await);
    let accounts = bank.get("/accounts").await.list();
    assert_eq!(accounts.len(), 1);
    assert_eq!((accounts[0]["id"].clone(), accounts[0]["default"].clone()), (json!(first_id), json!(1)));
}

pub async fn token_stats_journal_and_devices_follow_a_cash_out(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let user = env.portal_user("bank@example.com", "password-of-test", false);
    let scene = env.scene_for(user).await;
    let bank = env.portal("bank@example.com", "password-of-test").await;
    let other = env.portal_as("other@example.com", false).await;
    let admin = env.portal_as("admin@example.com", true).await;

    let token = env.issue(&scene.bank, &scene.phone, 2500).await;
    let uuid = uuid_of(&token);
    env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
    env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED"})).await.ok();
    env.issue(&scene.bank, &scene.phone, 100).await;

    let stats = bank.get("/tokenstat").await;
    let mut rows = stats.list();
    rows.sort_by_key(|row| row["state"].as_str().unwrap_or_default().to_owned());
    assert_eq!(stats.element_keys()[0], ["state", "type", "amount", "count"]);
    assert_eq!(
        rows,
        [
            json!({"state": "COMPLETED", "type": "CASHOUT", "amount": 2500, "count": 1}),
            json!({"state": "OPEN", "type": "CASHOUT", "amount": 100, "count": 1}),
        ]
    );
    assert_eq!(admin.get("/tokenstat").await.list().len(), 2, "an admin sees every token");

    let journal = bank.get("/journal").await;
    let entries = journal.list();
    assert_eq!(journal.element_keys()[0], ["id", "customer_id", "created", "entity", "action", "data"]);
    let actions: Vec<&str> = entries.iter().map(|entry| entry["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "confirm", "lock", "create"], "newest first");
    assert!(entries.iter().all(|entry| entry["entity"] == "token"));
    assert_eq!(entries[1]["data"]["uuid"], uuid.as_str());
    assert_eq!(entries[1]["data"]["state"], "COMPLETED");
    let confirms = bank.get("/journal?filter=confirm").await.list();
    assert_eq!(confirms.len(), 1, "filter matches the action");
    assert_eq!(confirms[0]["action"], "confirm");
    let completed = bank.get("/journal?filter=COMPLETED").await.list();
    assert_eq!(completed.len(), 1, "filter matches the data");
    assert_eq!(bank.get("/journal?limit=2").await.list().len(), 2);
    let created = crate::wire::parse_iso_millis(entries[3]["created"].as_str().unwrap()).unwrap();
    let since = bank.get(&format!("/journal?from={}", created + 1)).await.list();
    assert!(
        since.len() < 4 && since.iter().all(|entry| entry["id"] != entries[3]["id"]),
        "from is inclusive of later rows only"
    );
    assert!(bank.get(&format!("/journal?to={created}")).await.list().is_empty(), "to is exclusive");

    // Devices: list, rename (the Token API sees it at once), refuse deleting one with tokens.
    let devices = bank.get("/devices").await;
    assert_eq!(devices.element_keys()[0], DEVICE_KEYS);
    let list = devices.list();
    assert_eq!(list.len(), 2);
    let phone = list.iter().find(|device| device["uuid"] == scene.phone.uuid.as_str()).unwrap();
    let phone_id = phone["id"].as_i64().unwrap();
    let renamed = bank.put(&format!("/devices/{phone_id}"), json!({"refname": "renamed", "lat": 1.0})).await;
    assert_eq!(renamed.ok(), &json!(1), "a bare number: rows matched");
    let view = env.api.get(&format!("{TOKEN_DEVICES}/{}", scene.phone.uuid), &scene.bank).await;
    assert_eq!(view.ok()["refname"], "renamed");
    assert_eq!(view.json["lat"], Value::Null, "only type and refname are applied");
    ErrorMode::Original.assert_status(&bank.put(&format!("/devices/{phone_id}"), json!({})).await, 500);
    ErrorMode::Original.assert_status(&bank.delete(&format!("/devices/{phone_id}")).await, 500);
    let spare = env.register_phone(&scene.bank, &PHONE_C_2048, "spare").await;
    let spare_id = bank.get("/devices").await.list().iter().find(|d| d["uuid"] == spare.uuid.as_str()).unwrap()["id"]
        .as_i64()
        .unwrap();
    // Used once (its actor is live), then deleted: no more tokens for it.
    env.api.get(&format!("{TOKEN_DEVICES}/{}", spare.uuid), &scene.bank).await.ok();
    assert_eq!(affected_rows(&other.delete(&format!("/devices/{spare_id}")).await), 0);
    assert_eq!(affected_rows(&bank.delete(&format!("/devices/{spare_id}")).await), 1);
    let issue = env.issue_with(&scene.bank, json!({"device_uuid": spare.uuid, "amount": 1, "symbol": "EUR"})).await;
    ErrorMode::Original.assert_status(&issue, 500);

    // Another customer sees none of it; the admin sees everyone's.
    assert!(other.get("/tokenstat").await.list().is_empty());
    assert!(other.get("/journal").await.list().is_empty());
    assert!(other.get("/devices").await.list().is_empty());
    assert_eq!(other.put(&format!("/devices/{phone_id}"), json!({"refname": "x"})).await.ok(), &json!(0));
    assert_eq!(admin.get("/journal").await.list().len(), 4);
    let overview = admin.get("/admin/journal").await;
    assert_eq!(overview.element_keys()[0], ["created", "email", "entity", "action"]);
    assert_eq!(overview.list()[0]["email"], "bank@example.com");
    let device_stats = admin.get("/admin/devicestat").await;
    assert_eq!(device_stats.element_keys()[0], ["email", "type", "refname"]);
    let mut types: Vec<String> =
        device_stats.list().iter().map(|row| row["type"].as_str().unwrap().to_owned()).collect();
    types.sort();
    assert_eq!(types, ["ATM", "MOBILE"]);
}

/// Every `(place, text)` the store holds: the rows of every table on PostgreSQL, the raw
/// bytes of every file (WAL included) on SQLite.
async fn store_contents(env: &TestEnv) -> Vec<(String, Vec<u8>)> {
    match env.backend() {
        Backend::Sqlite => files_under(&env.store.data_dir),
        Backend::Postgres => {
            let url = &env.store.database.as_ref().expect("a PostgreSQL database").url;
            let client = connect(url).await.unwrap_or_else(|error| panic!("connect to {url}: {error}"));
            let tables = client
                .query(
                    "SELECT table_name FROM information_schema.tables \
                     WHERE table_type = 'BASE TABLE' AND table_schema = 'public'",
                    &[],
                )
                .await
                .expect("list tables");
            let mut contents = Vec::new();
            for table in tables {
                let name: String = table.get(0);
                let rows = client
                    .query(&format!("SELECT row_to_json(t)::text FROM \"{name}\" t"), &[])
                    .await
                    .unwrap_or_else(|error| panic!("read {name}: {error}"));
                let text: Vec<String> = rows.iter().map(|row| row.get::<_, String>(0)).collect();
                contents.push((format!("table {name}"), text.join("\n").into_bytes()));
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

pub async fn the_store_holds_no_plaintext_password_or_api_secret(backend: Backend) {
    let env = TestEnv::start_with(backend, &["--captcha-off"]).await;
    let registered_password = "registered-secret-pw";
    let registered =
        env.register(json!({"email": "registered@example.com", "password": registered_password, "captcha": "-"})).await;
    let portal = Portal { env: &env, jwt: jwt_of(&registered) };
    env.portal_user("cli@example.com", "cli-made-secret-pw", true);
    let (_, portal_creds) = portal_credentials(&portal, "token-api", registered_password).await;
    let cli_creds = env.access("cli@example.com", "cash-api");
    let twofa = portal.get("/auth/twofa").await;
    let totp_secret = twofa.ok()["secret"].as_str().unwrap().to_owned();

    let mut secrets: Vec<(&str, Vec<u8>)> = vec![
        ("registered password", registered_password.as_bytes().to_vec()),
        ("CLI password", b"cli-made-secret-pw".to_vec()),
        ("portal API secret", portal_creds.apisecret.as_bytes().to_vec()),
        ("portal API secret, upper case", portal_creds.apisecret.to_ascii_uppercase().into_bytes()),
        ("CLI API secret", cli_creds.apisecret.as_bytes().to_vec()),
        ("pending TOTP secret (base32)", totp_secret.as_bytes().to_vec()),
        ("pending TOTP secret (lower-case base32)", totp_secret.to_ascii_lowercase().into_bytes()),
    ];
    let raw = totp_rs::Secret::try_from_base32(&totp_secret).expect("base32");
    secrets.push(("pending TOTP secret (raw)", raw.as_bytes().to_vec()));

    let contents = store_contents(&env).await;
    let control = b"registered@example.com";
    assert!(
        contents.iter().any(|(_, content)| contains(content, control)),
        "the search found not even a user's email: it does not read where the server stores data"
    );
    for (what, form) in &secrets {
        for (place, content) in &contents {
            assert!(!contains(content, form), "{place} holds the {what} in cleartext");
        }
    }
}
