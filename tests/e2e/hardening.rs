//! The hardening pass: each scenario here is a defect a black-box probe found, and fails
//! without its fix. Stale nodes, NUL bytes, overflowing amounts, idempotent creates, slow
//! bodies, weak phone keys and sessions of deleted customers.

use std::time::{Duration, Instant};

use awc::http::Method;
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::{BigUint, RsaPrivateKey};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::{Api, Body, Creds, Reply};
use crate::flows::{claim_path, confirm_path, uuid_of, TOKENS, TOKEN_DEVICES};
use crate::harness::{Backend, TestEnv};
use crate::phone::{long_radiocode, PHONE_A_PKCS1};

/// The largest amount a token carries: 2^53 - 1.
const AMOUNT_MAX: i64 = 9_007_199_254_740_991;

/// `POST` with extra headers (e.g. `Idempotency-Key`) and API credentials.
async fn post_with(api: &Api, path: &str, creds: &Creds, headers: &[(&str, &str)], body: Value) -> Reply {
    let mut all = vec![("DN-API-KEY", creds.apikey.as_str()), ("DN-API-SECRET", creds.apisecret.as_str())];
    all.extend_from_slice(headers);
    api.request_with_headers(Method::POST, path, &all, Body::Json(body)).await
}

/// Node A issues a token (its actor holds the OPEN snapshot), node B locks it, and the ATM's
/// confirm reaches A: A must not refuse it from its stale copy ("locked by another device").
pub async fn a_stale_node_answers_from_the_stored_version(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let scene = env.scene("bank@stale.test").await;
    let (_node_b, api_b) = env.start_another_node(&[]).await;
    for round in 0..3 {
        let token = env.issue(&scene.bank, &scene.phone, 1_000 + round).await;
        let uuid = uuid_of(&token);
        let radiocode = long_radiocode(&token, scene.phone.key);
        let locked = api_b.get(&claim_path(&radiocode, &scene.atm), &scene.cash).await;
        assert_eq!(locked.ok()["state"], "LOCKED", "{}", locked.describe());
        // A second claim on A is refused from the stored state, as it should be.
        let again = env.claim(&scene.cash, &scene.atm, &radiocode).await;
        again.assert_status(403);
        assert_eq!(again.json["error"], "Token not in OPEN state.", "{}", again.describe());
        let confirmed = env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED"})).await;
        assert_eq!(confirmed.ok()["state"], "COMPLETED", "round {round}: {}", confirmed.describe());
        // And B, whose copy is now the stale one, refuses a second confirm from the stored state.
        let twice = api_b.put(&confirm_path(&uuid, &scene.atm), &scene.cash, json!({"state": "COMPLETED"})).await;
        assert_eq!(twice.json["message"], "Token not in LOCKED state.", "{}", twice.describe());
    }
}

/// Requests carrying NUL in every place the probe found one: each gets a 400 in the dncash
/// format and changes nothing.
pub async fn nul_bytes_are_refused_at_the_edge_and_change_nothing(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@nul.test").await;
    let admin = env.portal_as("admin@nul.test", true).await;
    let token = env.issue(&scene.bank, &scene.phone, 500).await;
    let uuid = uuid_of(&token);
    env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;
    let issue = |field: &str, value: &str| {
        let mut body = json!({"device_uuid": scene.phone.uuid, "amount": 100, "symbol": "EUR"});
        body[field] = json!(value);
        body
    };
    let refusals = [
        env.issue_with(&scene.bank, issue("refname", "a\u{0}b")).await,
        env.issue_with(&scene.bank, issue("symbol", "E\u{0}R")).await,
        env.issue_with(
            &scene.bank,
            json!({"device_uuid": scene.phone.uuid, "amount": 1, "symbol": "EUR", "info": {"k\u{0}": 1}}),
        )
        .await,
        env.api
            .post(TOKEN_DEVICES, &scene.bank, json!({"pubkey": PHONE_A_PKCS1.public_pem, "refname": "p\u{0}"}))
            .await,
        env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED", "lockrefname": "x\u{0}y"})).await,
        env.claim(&scene.cash, &scene.atm, "%00").await,
        admin.post("/accounts", json!({"value": "DE\u{0}1", "type": "BANKACCOUNT"})).await,
        admin.post("/auth/create", json!({"email": "a\u{0}@nul.test"})).await,
        admin.put("/customers/bank@nul.test", json!({"roles": "user\u{0}admin"})).await,
        admin.put("/params/KEY%00X", json!({})).await,
        admin.get("/journal?filter=%00").await,
    ];
    for reply in &refusals {
        reply.assert_status(400);
        let message =
            reply.json["message"].as_str().unwrap_or_else(|| reply.json["error"].as_str().unwrap_or_default());
        assert!(message.contains("NUL"), "no clear reason: {}", reply.describe());
    }
    // Nothing changed: one token, still LOCKED; the phone and the ATM; no account; the roles.
    assert_eq!(env.tokens(&scene.bank, "").await.len(), 1);
    assert_eq!(env.token_state(&scene.bank, &uuid).await, "LOCKED");
    assert_eq!(env.devices(&scene.bank).await.len(), 2);
    assert_eq!(admin.get("/accounts").await.list().len(), 0);
    let customers = admin.get("/customers").await.list();
    let bank = customers.iter().find(|customer| customer["email"] == "bank@nul.test").expect("the bank");
    assert!(!bank["roles"].to_string().contains('\u{0}'), "{bank}");
}

/// While one customer sends creates with NUL bytes, another's creates all succeed: a value
/// the store refuses never fails other write sets of a group commit.
pub async fn one_customers_nul_bytes_never_fail_another_customers_writes(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let good = env.scene("good@nul.test").await;
    let bad = env.scene("bad@nul.test").await;
    let good_requests = (0..120).map(|n| {
        env.issue_with(
            &good.bank,
            json!({"device_uuid": good.phone.uuid, "amount": n, "symbol": "EUR", "refname": format!("ok-{n}")}),
        )
    });
    let bad_requests = (0..60).map(|n| {
        env.issue_with(
            &bad.bank,
            json!({"device_uuid": bad.phone.uuid, "amount": n, "symbol": "EUR", "refname": format!("x\u{0}{n}")}),
        )
    });
    let (good_replies, bad_replies) = futures_util::future::join(
        futures_util::future::join_all(good_requests),
        futures_util::future::join_all(bad_requests),
    )
    .await;
    for reply in &good_replies {
        reply.assert_status(200);
    }
    for reply in &bad_replies {
        reply.assert_status(400);
    }
    assert_eq!(env.tokens(&good.bank, "").await.len(), 120);
    assert_eq!(env.tokens(&bad.bank, "").await.len(), 0);
}

/// Amounts above 2^53 - 1 are refused; two tokens at the bound still sum exactly, open and
/// completed, in the token statistics and the clearing sums.
pub async fn amounts_are_bounded_and_their_sums_never_overflow(backend: Backend) {
    let env = TestEnv::start_with(backend, &["--error-status", "4xx"]).await;
    let scene = env.scene("bank@amounts.test").await;
    let clearing = env.access(&scene.email, "clearing-api");
    let admin = env.portal_as("admin@amounts.test", true).await;
    for too_large in [json!(AMOUNT_MAX + 1), json!(i64::MAX), json!(-1)] {
        let refused = env
            .issue_with(&scene.bank, json!({"device_uuid": scene.phone.uuid, "amount": too_large, "symbol": "EUR"}))
            .await;
        refused.assert_status(400);
    }
    // `expires` must name a date from 1970 to 9999: a year such as -48559 has no RFC 3339 form.
    for out_of_range in
        [json!(-1), json!(-1_594_521_770_418_259_i64), json!(253_402_300_800_000_i64), json!("0001-01-01T00:00:00Z")]
    {
        let refused = env
            .issue_with(
                &scene.bank,
                json!({"device_uuid": scene.phone.uuid, "amount": 1, "symbol": "EUR", "expires": out_of_range}),
            )
            .await;
        refused.assert_status(400);
    }
    let latest = env
        .issue_with(
            &scene.bank,
            json!({"device_uuid": scene.phone.uuid, "amount": 0, "symbol": "EUR", "expires": 253_402_300_799_999_i64}),
        )
        .await;
    assert_eq!(latest.ok()["expires"], "9999-12-31T23:59:59.999Z");
    let uuid = uuid_of(latest.ok());
    let deleted =
        env.api.delete(&format!("/dnapi/token/v1/tokens/{uuid}?device_uuid={}", scene.phone.uuid), &scene.bank).await;
    deleted.assert_status(200);
    let tokens = [
        env.issue(&scene.bank, &scene.phone, AMOUNT_MAX).await,
        env.issue(&scene.bank, &scene.phone, AMOUNT_MAX).await,
    ];
    let open_sum = |stats: &[Value]| {
        stats.iter().find(|row| row["state"] == "OPEN").map(|row| row["amount"].to_string()).unwrap_or_default()
    };
    let stats = admin.get("/tokenstat").await.list();
    assert_eq!(open_sum(&stats), (2 * i128::from(AMOUNT_MAX)).to_string(), "{stats:?}");
    for token in &tokens {
        env.claim_ok(&scene.cash, &scene.atm, token, &scene.phone).await;
        let confirm = env.confirm(&scene.cash, &scene.atm, &uuid_of(token), json!({"state": "COMPLETED"})).await;
        confirm.assert_status(200);
    }
    // A cash-in may be confirmed with more than issued, but not beyond the bound.
    let cashin = env
        .issue_with(
            &scene.bank,
            json!({"device_uuid": scene.phone.uuid, "amount": 1, "symbol": "EUR", "type": "CASHIN"}),
        )
        .await
        .ok()
        .clone();
    env.claim_ok(&scene.cash, &scene.atm, &cashin, &scene.phone).await;
    let beyond = env
        .confirm(&scene.cash, &scene.atm, &uuid_of(&cashin), json!({"state": "COMPLETED", "amount": AMOUNT_MAX + 1}))
        .await;
    beyond.assert_status(400);
    let sums = env.api.get("/dnapi/clearing/v1/sums", &clearing).await;
    let cashout = sums.list().into_iter().find(|row| row["type"] == "CASHOUT").expect("a CASHOUT sum");
    assert_eq!(cashout["amount"].to_string(), (2 * i128::from(AMOUNT_MAX)).to_string(), "{}", sums.describe());
    assert_eq!(cashout["count"], 2);
}

/// A bank whose create timed out retries with the same `Idempotency-Key`: it gets the token it
/// was first given (secure code included), never a second one; another body under the key is
/// refused; the key belongs to its customer.
pub async fn a_retried_create_with_an_idempotency_key_answers_the_original_result(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let scene = env.scene("bank@retry.test").await;
    let other = env.scene("other@retry.test").await;
    let body = json!({"device_uuid": scene.phone.uuid, "amount": 700, "symbol": "EUR", "refname": "retry-1"});
    let key = [("Idempotency-Key", "booking-4711")];
    let first = post_with(&env.api, TOKENS, &scene.bank, &key, body.clone()).await;
    let first = first.ok().clone();
    let retry = post_with(&env.api, TOKENS, &scene.bank, &key, body.clone()).await;
    assert_eq!(retry.ok(), &first, "a retry answers the original result");
    // Any node answers it, from the store.
    if backend == Backend::Postgres {
        let (_node_b, api_b) = env.start_another_node(&[]).await;
        let elsewhere = post_with(&api_b, TOKENS, &scene.bank, &key, body.clone()).await;
        assert_eq!(elsewhere.ok(), &first, "another node answers the original result");
    }
    let changed = post_with(
        &env.api,
        TOKENS,
        &scene.bank,
        &key,
        json!({"device_uuid": scene.phone.uuid, "amount": 701, "symbol": "EUR"}),
    )
    .await;
    changed.assert_status(409);
    assert!(changed.json["message"].as_str().unwrap_or_default().contains("Idempotency-Key"), "{}", changed.describe());
    assert_eq!(env.tokens(&scene.bank, "").await.len(), 1, "exactly one token was issued");
    // The same key of another customer is that customer's own.
    let theirs = json!({"device_uuid": other.phone.uuid, "amount": 700, "symbol": "EUR"});
    post_with(&env.api, TOKENS, &other.bank, &key, theirs).await.assert_status(200);
    // Device creates take keys too.
    let device_key = [("Idempotency-Key", "phone-2")];
    let phone = json!({"pubkey": PHONE_A_PKCS1.public_pem, "refname": "phone-2"});
    let registered = post_with(&env.api, TOKEN_DEVICES, &scene.bank, &device_key, phone.clone()).await.ok().clone();
    let again = post_with(&env.api, TOKEN_DEVICES, &scene.bank, &device_key, phone).await;
    assert_eq!(again.ok(), &registered);
    assert_eq!(env.devices(&scene.bank).await.len(), 3, "the scene's phone and ATM, and phone-2 once");
    // Keys of concurrent requests: one commits, the others answer its result or "in flight".
    let burst = (0..8).map(|_| post_with(&env.api, TOKENS, &scene.bank, &[("Idempotency-Key", "burst")], body.clone()));
    let replies = futures_util::future::join_all(burst).await;
    let created: Vec<&Value> = replies.iter().filter(|reply| reply.status == 200).map(|reply| &reply.json).collect();
    assert!(!created.is_empty(), "none of the burst succeeded");
    assert!(created.iter().all(|token| token["uuid"] == created[0]["uuid"]), "one token for one key");
    for reply in replies.iter().filter(|reply| reply.status != 200) {
        reply.assert_status(409);
        assert_eq!(reply.header("retry-after"), Some("1"), "{}", reply.describe());
    }
    assert_eq!(env.tokens(&scene.bank, "").await.len(), 2);
    let invalid = post_with(&env.api, TOKENS, &scene.bank, &[("Idempotency-Key", "")], body).await;
    invalid.assert_status(400);
}

/// A body that trickles in is cut at the body deadline with a 408 and a closed connection,
/// authenticated or not; the server keeps answering meanwhile.
pub async fn a_slow_body_is_cut_at_the_body_deadline(backend: Backend) {
    let env = TestEnv::start_with(backend, &["--body-timeout-ms", "1500", "--max-connections", "64"]).await;
    let address = env.base_url().trim_start_matches("http://").to_owned();
    let trickle = |path: &'static str| {
        let address = address.clone();
        async move {
            let started = Instant::now();
            let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{"
            );
            stream.write_all(head.as_bytes()).await.expect("send the head");
            let mut answer = Vec::new();
            // One byte every 300 ms: never idle long, never done.
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
                let mut buffer = [0_u8; 1024];
                if let Ok(Ok(read)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await {
                    answer.extend_from_slice(&buffer[..read]);
                    if read == 0 {
                        break;
                    }
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
            (started.elapsed(), String::from_utf8_lossy(&answer).into_owned())
        }
    };
    let clients: Vec<_> = (0..24)
        .map(|n| trickle(if n % 2 == 0 { "/dnapi/admin/v1/auth" } else { "/dnapi/mobile/v1/trigger" }))
        .collect();
    let health = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.api.get_anonymous("/health").await
    };
    let (results, health) = futures_util::future::join(futures_util::future::join_all(clients), health).await;
    health.assert_status(200);
    for (elapsed, answer) in results {
        assert!(answer.starts_with("HTTP/1.1 408"), "not cut with a 408: {answer:?}");
        assert!(elapsed < Duration::from_secs(8), "cut only after {elapsed:?}");
    }
}

fn public_pem(private: &RsaPrivateKey) -> String {
    private.to_public_key().to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("PEM")
}

/// Phone keys too short or with a small exponent are refused at registration with the reason;
/// settings raise the bound or allow other exponents.
pub async fn weak_phone_keys_are_refused_with_the_reason(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@keys.test").await;
    let mut rng = rand::thread_rng();
    let short = RsaPrivateKey::new(&mut rng, 512).expect("a 512-bit key");
    let small_exponent = RsaPrivateKey::new_with_exp(&mut rng, 1024, &BigUint::from(3_u8)).expect("an e=3 key");
    let refused = env.api.post(TOKEN_DEVICES, &scene.bank, json!({"pubkey": public_pem(&short)})).await;
    refused.assert_status(400);
    assert!(refused.json["message"].as_str().unwrap_or_default().contains("512 bits"), "{}", refused.describe());
    let refused = env.api.post(TOKEN_DEVICES, &scene.bank, json!({"pubkey": public_pem(&small_exponent)})).await;
    refused.assert_status(400);
    assert!(refused.json["message"].as_str().unwrap_or_default().contains("exponent 3"), "{}", refused.describe());
    assert_eq!(env.devices(&scene.bank).await.len(), 2, "only the scene's own phone and ATM");

    let lenient = TestEnv::start_with(backend, &["--allow-any-rsa-exponent"]).await;
    let bank = lenient.scene("bank@keys.test").await;
    lenient
        .api
        .post(TOKEN_DEVICES, &bank.bank, json!({"pubkey": public_pem(&small_exponent)}))
        .await
        .assert_status(200);
    let strict = TestEnv::start_with(backend, &["--min-rsa-key-bits", "2048"]).await;
    let customer = strict.customer("bank@keys.test");
    let creds = strict.access(customer["email"].as_str().unwrap_or_default(), "token-api");
    let refused = strict.api.post(TOKEN_DEVICES, &creds, json!({"pubkey": PHONE_A_PKCS1.public_pem})).await;
    refused.assert_status(400);
    assert!(refused.json["message"].as_str().unwrap_or_default().contains("at least 2048"), "{}", refused.describe());
}

/// A deleted customer's sessions end with it: its JWT reads and writes nothing any more.
pub async fn a_deleted_customers_session_ends(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let admin = env.portal_as("admin@sessions.test", true).await;
    let user = env.portal_as("user@sessions.test", false).await;
    user.get("/tokenstat").await.assert_status(200);
    admin.delete("/customers/user@sessions.test").await.assert_status(200);
    for reply in [user.get("/tokenstat").await, user.post("/access", json!({"scope": "token-api"})).await] {
        reply.assert_status(401);
        assert_eq!(reply.json["message"], "The token has been revoked.", "{}", reply.describe());
    }
}
