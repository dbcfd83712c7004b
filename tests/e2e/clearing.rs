//! Clearing (§7.2, §8.3): a COMPLETED cash-out or cash-in leaves one clearing row, readable
//! through the Clearing API by both parties (and by admins who name one of them), summed by
//! type, currency, debitor and creditor. Nothing else clears.

use serde_json::{json, Value};

use crate::api::{Creds, Reply};
use crate::flows::{uuid_of, Phone, Scene};
use crate::harness::{Backend, TestEnv};
use crate::wire::{assert_keys, assert_recent_timestamp, assert_unauthorized};

const CLEARING: &str = "/dnapi/clearing/v1";
const ROW_KEYS: [&str; 11] = [
    "date",
    "uuid",
    "type",
    "tokendevice",
    "refname",
    "lockdevice",
    "lockrefname",
    "amount",
    "symbol",
    "debitor",
    "creditor",
];
const SUM_KEYS: [&str; 6] = ["type", "symbol", "debitor_id", "creditor_id", "count", "amount"];

/// A bank that issues tokens and a shop whose till pays them out or takes cash in; both with
/// Clearing API credentials.
struct Settlement {
    bank: Scene,
    bank_id: i64,
    bank_clearing: Creds,
    shop_cash: Creds,
    shop_id: i64,
    shop_clearing: Creds,
    till: String,
    cashout: String,
    cashin: String,
    /// Tokens that must not clear: a completed transfer, a canceled cash-out, a locked one.
    unsettled: Vec<String>,
}

async fn settle(env: &TestEnv, cash: &Creds, device: &str, token: &Value, phone: &Phone, body: Value) {
    env.claim_ok(cash, device, token, phone).await;
    env.confirm(cash, device, &uuid_of(token), body).await.ok();
}

async fn settlement(env: &TestEnv) -> Settlement {
    let bank_customer = env.customer("bank@example.com");
    let bank = env.scene_for(bank_customer.clone()).await;
    let bank_clearing = env.access("bank@example.com", "clearing-api");
    let shop_customer = env.customer("shop@example.com");
    let shop_cash = env.access("shop@example.com", "cash-api");
    let shop_clearing = env.access("shop@example.com", "clearing-api");
    let till = env.register_cash_device(&shop_cash, "till-1").await;
    let phone = bank.phone.clone();

    let issue = |token_type: &str, amount: i64, refname: &str| json!({"device_uuid": phone.uuid, "amount": amount, "symbol": "EUR", "type": token_type, "refname": refname});
    let cashout = env.issue_with(&bank.bank, issue("CASHOUT", 1000, "co-1")).await.ok().clone();
    let body = json!({"state": "COMPLETED", "amount": 900, "lockrefname": "tx-1"});
    settle(env, &shop_cash, &till, &cashout, &phone, body).await;
    let cashin = env.issue_with(&bank.bank, issue("CASHIN", 500, "ci-1")).await.ok().clone();
    let body = json!({"state": "COMPLETED", "amount": 700, "lockrefname": "tx-2"});
    settle(env, &shop_cash, &till, &cashin, &phone, body).await;

    let transfer = env.issue_with(&bank.bank, issue("TRANSFER", 300, "tr-1")).await.ok().clone();
    settle(env, &shop_cash, &till, &transfer, &phone, json!({"state": "COMPLETED"})).await;
    let canceled = env.issue_with(&bank.bank, issue("CASHOUT", 400, "co-2")).await.ok().clone();
    settle(env, &shop_cash, &till, &canceled, &phone, json!({"state": "CANCELED"})).await;
    let locked = env.issue_with(&bank.bank, issue("CASHIN", 50, "ci-2")).await.ok().clone();
    env.claim_ok(&shop_cash, &till, &locked, &phone).await;

    Settlement {
        bank_id: bank_customer["id"].as_i64().expect("bank id"),
        bank,
        bank_clearing,
        shop_cash,
        shop_id: shop_customer["id"].as_i64().expect("shop id"),
        shop_clearing,
        till,
        cashout: uuid_of(&cashout),
        cashin: uuid_of(&cashin),
        unsettled: vec![uuid_of(&transfer), uuid_of(&canceled), uuid_of(&locked)],
    }
}

async fn clearing_rows(env: &TestEnv, creds: &Creds, query: &str) -> Reply {
    env.api.get(&format!("{CLEARING}/tokens{query}"), creds).await
}

/// Rows of a list reply by token uuid.
fn by_uuid(rows: &[Value]) -> std::collections::HashMap<String, Value> {
    rows.iter().map(|row| (uuid_of(row), row.clone())).collect()
}

/// Sums sorted by type, for comparison.
fn sorted(mut sums: Vec<Value>) -> Vec<Value> {
    sums.sort_by_key(|sum| sum["type"].as_str().unwrap_or_default().to_owned());
    sums
}

pub async fn completed_cash_outs_and_cash_ins_leave_one_clearing_row_each(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let s = settlement(&env).await;

    for creds in [&s.bank_clearing, &s.shop_clearing] {
        let reply = clearing_rows(&env, creds, "").await;
        let rows = reply.list();
        assert_eq!(rows.len(), 2, "exactly the cash-out and the cash-in clear: {}", reply.describe());
        for keys in reply.element_keys() {
            assert_eq!(keys, ROW_KEYS, "{}", reply.describe());
        }
        let rows = by_uuid(&rows);
        let cashout = &rows[&s.cashout];
        assert_eq!(cashout["type"], "CASHOUT");
        assert_eq!(cashout["amount"], 900, "the confirmed amount clears");
        assert_eq!(cashout["symbol"], "EUR");
        assert_eq!(cashout["tokendevice"], "phone1");
        assert_eq!(cashout["refname"], "co-1");
        assert_eq!(cashout["lockdevice"], "till-1");
        assert_eq!(cashout["lockrefname"], "tx-1");
        // No default accounts exist, so both snapshots are null.
        assert_eq!((&cashout["debitor"], &cashout["creditor"]), (&Value::Null, &Value::Null));
        assert_recent_timestamp(&cashout["date"], "clearing date");
        let cashin = &rows[&s.cashin];
        assert_eq!((cashin["type"].as_str(), cashin["amount"].as_i64()), (Some("CASHIN"), Some(700)));
        for unsettled in &s.unsettled {
            assert!(!rows.contains_key(unsettled), "{unsettled} must not clear");
        }
    }

    // One token's row; none for a token that did not clear.
    let one = env.api.get(&format!("{CLEARING}/tokens/{}", s.cashin), &s.shop_clearing).await;
    assert_keys(&one, &ROW_KEYS);
    assert_eq!(one.ok()["uuid"], s.cashin.as_str());
    let none = env.api.get(&format!("{CLEARING}/tokens/{}", s.unsettled[0]), &s.bank_clearing).await;
    none.assert_status(200);
    assert!(none.text.is_empty(), "no row: 200 with an empty body: {}", none.describe());
}

pub async fn clearing_sums_name_debitor_and_creditor(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let s = settlement(&env).await;
    let reply = env.api.get(&format!("{CLEARING}/sums"), &s.bank_clearing).await;
    for keys in reply.element_keys() {
        assert_eq!(keys, SUM_KEYS, "{}", reply.describe());
    }
    let expected = vec![
        json!({"type": "CASHIN", "symbol": "EUR", "debitor_id": s.shop_id, "creditor_id": s.bank_id, "count": 1, "amount": 700}),
        json!({"type": "CASHOUT", "symbol": "EUR", "debitor_id": s.bank_id, "creditor_id": s.shop_id, "count": 1, "amount": 900}),
    ];
    assert_eq!(sorted(reply.list()), expected, "{}", reply.describe());
    let shop = env.api.get(&format!("{CLEARING}/sums"), &s.shop_clearing).await;
    assert_eq!(sorted(shop.list()), expected);

    // A second cash-out adds to its group.
    let more = env.issue(&s.bank.bank, &s.bank.phone, 250).await;
    settle(&env, &s.shop_cash, &s.till, &more, &s.bank.phone, json!({"state": "COMPLETED"})).await;
    let again = sorted(env.api.get(&format!("{CLEARING}/sums"), &s.bank_clearing).await.list());
    assert_eq!((again[1]["count"].as_i64(), again[1]["amount"].as_i64()), (Some(2), Some(1150)));
}

pub async fn clearing_filters_read_dates_and_types_like_the_original(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let s = settlement(&env).await;
    let count = |reply: Reply| reply.list().len();
    assert_eq!(count(clearing_rows(&env, &s.bank_clearing, "?type=CASHIN").await), 1);
    assert_eq!(count(clearing_rows(&env, &s.bank_clearing, "?type=TRANSFER").await), 0);
    assert_eq!(count(clearing_rows(&env, &s.bank_clearing, "?from=2000-01-01T00:00:00Z").await), 2);
    assert_eq!(count(clearing_rows(&env, &s.bank_clearing, "?from=2000-01-01&to=2999-01-01").await), 2);
    assert_eq!(count(clearing_rows(&env, &s.bank_clearing, "?from=2999-01-01T00:00:00Z").await), 0);
    assert_eq!(count(clearing_rows(&env, &s.bank_clearing, "?to=2000-01-01").await), 0);
    // Epoch numbers are not dates: the original's filter then matches nothing.
    assert_eq!(count(clearing_rows(&env, &s.bank_clearing, "?from=946684800000").await), 0);
    // A customer's `customer_id` is ignored: it always sees its own rows.
    let own = format!("?customer_id={}", s.bank_id + 1000);
    assert_eq!(count(clearing_rows(&env, &s.bank_clearing, &own).await), 2);
}

pub async fn other_customers_see_no_clearings_and_admins_name_whom_they_see(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let s = settlement(&env).await;

    env.customer("other@example.com");
    let other = env.access("other@example.com", "clearing-api");
    assert!(clearing_rows(&env, &other, "").await.list().is_empty());
    assert!(env.api.get(&format!("{CLEARING}/sums"), &other).await.list().is_empty());
    let single = env.api.get(&format!("{CLEARING}/tokens/{}", s.cashout), &other).await;
    single.assert_status(200);
    assert!(single.text.is_empty(), "{}", single.describe());

    // Credentials of another scope are refused.
    assert_unauthorized(&clearing_rows(&env, &s.bank.bank, "").await);
    assert_unauthorized(&clearing_rows(&env, &s.shop_cash, "").await);

    let admin_customer = env.cli_json(&["customer", "create", "--email", "admin@example.com", "--roles", "user,admin"]);
    let admin = env.access("admin@example.com", "clearing-api");
    assert!(clearing_rows(&env, &admin, "").await.list().is_empty(), "admins must name a customer");
    let reply = clearing_rows(&env, &admin, &format!("?customer_id={}", s.bank_id)).await;
    let rows = by_uuid(&reply.list());
    assert_eq!(rows.len(), 2, "{}", reply.describe());
    let mut admin_keys: Vec<&str> = ROW_KEYS.to_vec();
    admin_keys.extend(["debitor_id", "creditor_id"]);
    for keys in reply.element_keys() {
        assert_eq!(keys, admin_keys, "{}", reply.describe());
    }
    assert_eq!(
        (rows[&s.cashout]["debitor_id"].as_i64(), rows[&s.cashout]["creditor_id"].as_i64()),
        (Some(s.bank_id), Some(s.shop_id))
    );
    assert_eq!(
        (rows[&s.cashin]["debitor_id"].as_i64(), rows[&s.cashin]["creditor_id"].as_i64()),
        (Some(s.shop_id), Some(s.bank_id))
    );
    let sums = env.api.get(&format!("{CLEARING}/sums?customer_id={}", s.shop_id), &admin).await;
    assert_eq!(sums.list().len(), 2);

    // Customers: all of them for the admin; only itself, without secrets, for anyone else.
    let all = env.api.get(&format!("{CLEARING}/customers"), &admin).await;
    let emails: Vec<&str> = all.ok().as_array().expect("an array").iter().filter_map(|c| c["email"].as_str()).collect();
    for email in ["bank@example.com", "shop@example.com", "other@example.com", "admin@example.com"] {
        assert!(emails.contains(&email), "{email} missing: {}", all.describe());
    }
    for keys in all.element_keys() {
        assert_eq!(keys, ["id", "created", "email", "display_name", "roles", "status", "info"], "{}", all.describe());
    }
    assert!(all.list().iter().any(|c| c["id"] == admin_customer["id"] && c["roles"] == "user,admin"));
    let own = env.api.get(&format!("{CLEARING}/customers"), &s.bank_clearing).await;
    assert_eq!(own.json, json!([{"email": "bank@example.com", "display_name": null, "roles": "user", "info": null}]));
    assert_eq!(own.element_keys(), [["email", "display_name", "roles", "info"]]);
}

/// A portal user registered over the admin API (the server runs with `--captcha-off`); its JWT.
async fn register(env: &TestEnv, email: &str) -> String {
    let reply = env
        .api
        .request(
            awc::http::Method::POST,
            "/dnapi/admin/v1/auth/register",
            None,
            crate::api::Body::Json(json!({"email": email, "password": "a long password"})),
        )
        .await;
    reply.ok()["token"].as_str().unwrap_or_else(|| panic!("no token: {}", reply.describe())).to_owned()
}

async fn portal(env: &TestEnv, method: awc::http::Method, path: &str, jwt: &str, body: Option<Value>) -> Reply {
    let bearer = format!("Bearer {jwt}");
    let body = body.map_or(crate::api::Body::None, crate::api::Body::Json);
    env.api
        .request_with_headers(method, &format!("/dnapi/admin/v1{path}"), &[("Authorization", bearer.as_str())], body)
        .await
}

/// The caller's default account as the portal lists it.
async fn default_account(env: &TestEnv, jwt: &str) -> Value {
    let accounts = portal(env, awc::http::Method::GET, "/accounts?default=1", jwt, None).await.list();
    assert_eq!(accounts.len(), 1, "one default account: {accounts:?}");
    accounts[0].clone()
}

pub async fn clearing_rows_snapshot_each_partys_default_account(backend: Backend) {
    let env = TestEnv::start_with(backend, &["--captcha-off"]).await;
    let bank_jwt = register(&env, "bank@example.com").await;
    let shop_jwt = register(&env, "shop@example.com").await;
    let account =
        |value: &str| json!({"value": value, "type": "BANKACCOUNT", "default": 1, "symbol": "EUR", "refname": "main"});
    portal(&env, awc::http::Method::POST, "/accounts", &bank_jwt, Some(account("DE0001"))).await.assert_status(200);
    portal(&env, awc::http::Method::POST, "/accounts", &shop_jwt, Some(account("DE0002"))).await.assert_status(200);
    let bank_account = default_account(&env, &bank_jwt).await;
    let shop_account = default_account(&env, &shop_jwt).await;

    let bank = env.scene_for(json!({"email": "bank@example.com"})).await;
    let bank_clearing = env.access("bank@example.com", "clearing-api");
    let shop_cash = env.access("shop@example.com", "cash-api");
    let till = env.register_cash_device(&shop_cash, "till-1").await;
    let cashout = env.issue(&bank.bank, &bank.phone, 1000).await;
    settle(&env, &shop_cash, &till, &cashout, &bank.phone, json!({"state": "COMPLETED"})).await;

    let row = env.api.get(&format!("{CLEARING}/tokens/{}", uuid_of(&cashout)), &bank_clearing).await;
    let row = row.ok();
    assert_eq!(row["debitor"], bank_account, "the bank pays a cash-out from its default account");
    assert_eq!(row["creditor"], shop_account, "the shop is paid into its default account");

    // The row keeps the accounts as they were: a later change does not reach it.
    let mut changed = bank_account.clone();
    changed["value"] = json!("DE9999");
    let path = format!("/accounts/{}", bank_account["id"]);
    portal(&env, awc::http::Method::PUT, &path, &bank_jwt, Some(changed)).await.assert_status(200);
    assert_eq!(default_account(&env, &bank_jwt).await["value"], "DE9999");
    let again = env.api.get(&format!("{CLEARING}/tokens/{}", uuid_of(&cashout)), &bank_clearing).await;
    assert_eq!(again.ok()["debitor"]["value"], "DE0001", "{}", again.describe());

    // A cash-in the other way round: the shop owes the bank, from the accounts of now.
    let cashin = env
        .issue_with(
            &bank.bank,
            json!({"device_uuid": bank.phone.uuid, "amount": 300, "symbol": "EUR", "type": "CASHIN"}),
        )
        .await
        .ok()
        .clone();
    settle(&env, &shop_cash, &till, &cashin, &bank.phone, json!({"state": "COMPLETED"})).await;
    let row = env.api.get(&format!("{CLEARING}/tokens/{}", uuid_of(&cashin)), &bank_clearing).await;
    let row = row.ok();
    assert_eq!(row["debitor"], shop_account);
    assert_eq!(row["creditor"]["value"], "DE9999");
}
