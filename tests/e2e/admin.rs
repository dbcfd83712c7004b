//! Admin (portal) API: sessions and accounts of portal users (spec §3.2–3.7). Helpers shared by
//! the `admin_*` modules live here too.
//!
//! Users are made with `cashgrid user create` (the documented way to get the first admin) or by
//! self-registration on a server started with `--captcha-off`.

use std::time::{Duration, Instant};

use awc::http::Method;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::api::{Body, Reply};
use crate::harness::{Backend, TestEnv};
use crate::wire::{assert_error_body, object_keys, ErrorMode};

pub const ADMIN: &str = "/dnapi/admin/v1";
/// The claims of a portal JWT, in the original's order.
pub const CLAIM_KEYS: [&str; 9] = ["id", "created", "email", "display_name", "roles", "status", "info", "iat", "exp"];
/// The original's default session lifetime: 168 h.
const JWT_LIFETIME_SECONDS: i64 = 604_800;
const WRONG_LOGIN: &str = "Sorry, wrong user or password.";
const NOT_ALLOWED: &str = "Illegal access: Not allowed.";

/// A portal session: calls the admin API with `Authorization: Bearer <jwt>`.
pub struct Portal<'a> {
    pub env: &'a TestEnv,
    pub jwt: String,
}

impl Portal<'_> {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let authorization = format!("Bearer {}", self.jwt);
        let body = body.map_or(Body::None, Body::Json);
        self.env
            .api
            .request_with_headers(method, &format!("{ADMIN}{path}"), &[("Authorization", authorization.as_str())], body)
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    pub fn claims(&self) -> Value {
        claims(&self.jwt)
    }
}

/// The claims of a JWT, without checking its signature.
pub fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&claims_text(jwt).into_bytes()).expect("JWT claims are JSON")
}

fn claims_text(jwt: &str) -> String {
    let payload = jwt.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("claims are Base64url")).expect("claims are UTF-8")
}

/// The `token` of a `{"token": <jwt>}` answer.
#[track_caller]
pub fn jwt_of(reply: &Reply) -> String {
    let body = reply.ok();
    assert_eq!(reply.keys(), ["token"], "expected {{\"token\":…}}: {}", reply.describe());
    body["token"].as_str().unwrap_or_else(|| panic!("no token: {}", reply.describe())).to_owned()
}

/// An OK packet (`{"fieldCount":0,"affectedRows":N,…}`); returns N.
#[track_caller]
pub fn affected_rows(reply: &Reply) -> i64 {
    let body = reply.ok();
    assert_eq!(
        reply.keys(),
        [
            "fieldCount",
            "affectedRows",
            "insertId",
            "serverStatus",
            "warningCount",
            "message",
            "protocol41",
            "changedRows"
        ],
        "not an OK packet: {}",
        reply.describe()
    );
    body["affectedRows"].as_i64().expect("affectedRows")
}

/// 200 with an empty body (the original's handlers that resolve with nothing).
#[track_caller]
pub fn assert_empty_ok(reply: &Reply) {
    reply.assert_status(200);
    assert!(reply.text.is_empty(), "expected an empty body: {}", reply.describe());
}

impl TestEnv {
    /// `cashgrid user create --email E --password P [--admin]`; returns the printed user.
    pub fn portal_user(&self, email: &str, password: &str, admin: bool) -> Value {
        let mut args = vec!["user", "create", "--email", email, "--password", password];
        if admin {
            args.push("--admin");
        }
        let user = self.cli_json(&args);
        assert_eq!(user["email"], email, "user create printed {user}");
        user
    }

    pub async fn login_reply(&self, email: &str, password: &str, code: Option<&str>) -> Reply {
        let mut body = json!({"user": email, "password": password});
        if let Some(code) = code {
            body["token"] = json!(code);
        }
        self.api.request(Method::POST, &format!("{ADMIN}/auth"), None, Body::Json(body)).await
    }

    /// Log in and expect a session.
    pub async fn portal(&self, email: &str, password: &str) -> Portal<'_> {
        let reply = self.login_reply(email, password, None).await;
        Portal { env: self, jwt: jwt_of(&reply) }
    }

    /// A portal user made with the CLI, logged in.
    pub async fn portal_as(&self, email: &str, admin: bool) -> Portal<'_> {
        self.portal_user(email, "password-of-test", admin);
        self.portal(email, "password-of-test").await
    }

    pub async fn register(&self, body: Value) -> Reply {
        self.api.request(Method::POST, &format!("{ADMIN}/auth/register"), None, Body::Json(body)).await
    }

    pub async fn admin_call(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.api.request_with_headers(method, &format!("{ADMIN}{path}"), headers, Body::None).await
    }
}

/// 200 `{"result": text}`: how login and registration refuse.
#[track_caller]
fn assert_result(reply: &Reply, text: &str) {
    reply.assert_status(200);
    assert_eq!(reply.json, json!({ "result": text }), "{}", reply.describe());
}

#[track_caller]
fn assert_unauthorized_jwt(reply: &Reply, message: &str) {
    reply.assert_status(401);
    assert_error_body(reply, message);
}

pub async fn registration_and_login_issue_jwts_with_the_original_claims(backend: Backend) {
    let env = TestEnv::start_with(backend, &["--captcha-off"]).await;
    let registered = env
        .register(json!({"email": "New@Example.com", "password": "12345678", "captcha": "x", "display_name": "New"}))
        .await;
    let jwt = jwt_of(&registered);
    assert_eq!(object_keys(&claims_text(&jwt)), CLAIM_KEYS, "claims: {}", claims_text(&jwt));
    let session = claims(&jwt);
    assert!(session["id"].is_i64(), "{session}");
    assert_eq!(session["email"], "new@example.com");
    assert_eq!(session["display_name"], "New");
    assert_eq!(session["roles"], json!(["user"]));
    assert_eq!(session["status"], 1, "registered users need no password change");
    assert_eq!(session["info"], Value::Null);
    assert_eq!(session["exp"].as_i64().unwrap() - session["iat"].as_i64().unwrap(), JWT_LIFETIME_SECONDS);
    crate::wire::assert_recent_timestamp(&session["created"], "claims.created");

    assert_result(
        &env.register(json!({"email": "new@example.com", "password": "12345678"})).await,
        "Sorry, this email is already registered.",
    );
    assert_result(&env.register(json!({"email": "b@example.com", "password": "1234567"})).await, "Sorry, bad password");
    assert_result(&env.register(json!({"email": "b@example.com"})).await, "Sorry, bad password");

    let login = env.login_reply("NEW@example.com", "12345678", None).await;
    let portal = Portal { env: &env, jwt: jwt_of(&login) };
    assert_eq!(portal.claims()["id"], session["id"]);
    assert_eq!(object_keys(&claims_text(&portal.jwt)), CLAIM_KEYS);
    portal.get("/devices").await.assert_status(200);

    // express-jwt's answers.
    let none = env.admin_call(Method::GET, "/devices", &[]).await;
    assert_unauthorized_jwt(&none, "No authorization token was found");
    let basic = env.admin_call(Method::GET, "/devices", &[("Authorization", "Basic abc")]).await;
    assert_unauthorized_jwt(&basic, "Format is Authorization: Bearer [token]");
    let malformed = env.admin_call(Method::GET, "/devices", &[("Authorization", "bearer abc")]).await;
    assert_unauthorized_jwt(&malformed, "jwt malformed");
    // Another signature: one character in the middle of the signature part changed.
    let position = portal.jwt.rfind('.').unwrap() + 10;
    let replacement = if &portal.jwt[position..=position] == "A" { "B" } else { "A" };
    let mut forged = portal.jwt.clone();
    forged.replace_range(position..=position, replacement);
    let forged = env.admin_call(Method::GET, "/devices", &[("Authorization", &format!("Bearer {forged}"))]).await;
    assert_unauthorized_jwt(&forged, "invalid signature");
    // Unknown paths need a session first, then answer the original's "Not Found".
    assert_unauthorized_jwt(&env.admin_call(Method::GET, "/nothing", &[]).await, "No authorization token was found");
    ErrorMode::Original.assert_unknown_route(&portal.get("/nothing").await, "/dnapi/admin/v1/nothing");
    // Preflights pass without a session only when they ask for the authorization header.
    let preflight = env
        .admin_call(Method::OPTIONS, "/devices", &[("Access-Control-Request-Headers", "content-type, authorization")])
        .await;
    preflight.assert_status(200);
    assert_eq!(preflight.header("allow"), Some("GET,HEAD"));
    assert_unauthorized_jwt(
        &env.admin_call(Method::OPTIONS, "/devices", &[]).await,
        "No authorization token was found",
    );
    env.admin_call(Method::OPTIONS, "/auth", &[]).await.assert_status(200);
}

pub async fn wrong_passwords_are_answered_ever_later(backend: Backend) {
    let env = TestEnv::start(backend).await;
    env.portal_user("user@example.com", "right-password", false);

    // Without --captcha-off no registration passes: reCAPTCHA cannot be verified here.
    assert_result(
        &env.register(json!({"email": "bot@example.com", "password": "12345678", "captcha": "x"})).await,
        "Sorry, I don`t think you are a real person! Please try again.",
    );

    let started = Instant::now();
    assert_result(&env.login_reply("user@example.com", "wrong-1", None).await, WRONG_LOGIN);
    let first = started.elapsed();
    let started = Instant::now();
    assert_result(&env.login_reply("USER@example.com", "wrong-2", None).await, WRONG_LOGIN);
    let second = started.elapsed();
    assert!(first < Duration::from_secs(1), "the first failure is not delayed: {first:?}");
    assert!(second >= Duration::from_secs(1), "the second failure waits (2^1 − 1) s: {second:?}");
    // Unknown users get the same answer.
    assert_result(&env.login_reply("nobody@example.com", "wrong", None).await, WRONG_LOGIN);

    // A success resets the count: the next failure is immediate again.
    env.portal("user@example.com", "right-password").await;
    let started = Instant::now();
    assert_result(&env.login_reply("user@example.com", "wrong-3", None).await, WRONG_LOGIN);
    assert!(started.elapsed() < Duration::from_secs(1), "the count restarts after a success");
}

/// The current TOTP code of a base32 secret, waiting for a fresh 30 s step when the current
/// one is about to end (so the server checks the same step).
async fn current_code(secret_base32: &str) -> (String, String) {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).expect("base32 secret");
    let totp = totp_rs::Builder::new().with_secret(secret).with_skew(0).build_noncompliant();
    let mut now = unix_seconds();
    if now % 30 > 25 {
        tokio::time::sleep(Duration::from_secs(31 - now % 30)).await;
        now = unix_seconds();
    }
    let code = totp.generate(now).to_string();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    (code, wrong)
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub async fn two_factor_login_needs_the_current_code(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let portal = env.portal_as("user@example.com", false).await;

    let setup = portal.get("/auth/twofa").await;
    assert_eq!(setup.keys(), ["secret", "url"], "{}", setup.describe());
    let secret = setup.json["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "20 bytes in RFC 4648 base32: {secret}");
    assert!(secret.bytes().all(|byte| byte.is_ascii_uppercase() || (b'2'..=b'7').contains(&byte)), "{secret}");
    assert_eq!(setup.json["url"], format!("otpauth://totp/dncash.io%20(user%40example.com)?secret={secret}"));

    let (code, wrong) = current_code(&secret).await;
    ErrorMode::Original
        .assert_business_error(&portal.post("/auth/twofa", json!({"token": wrong})).await, "Invalid 2FA token");
    let enabled = Portal { env: &env, jwt: jwt_of(&portal.post("/auth/twofa", json!({"token": code})).await) };
    assert_eq!(enabled.claims()["roles"], json!(["user", "twofa"]));

    let need = env.login_reply("user@example.com", "password-of-test", None).await;
    need.assert_status(200);
    assert_eq!(need.json, json!({"twofa": "Need 2FA token."}));
    let (code, wrong) = current_code(&secret).await;
    assert_result(
        &env.login_reply("user@example.com", "password-of-test", Some(&wrong)).await,
        "Sorry, the token was incorrect.",
    );
    let login = env.login_reply("user@example.com", "password-of-test", Some(&code)).await;
    assert_eq!(claims(&jwt_of(&login))["roles"], json!(["user", "twofa"]));
    // A wrong password still fails first, whatever the code.
    assert_result(&env.login_reply("user@example.com", "nope", Some(&code)).await, WRONG_LOGIN);

    let disabled = jwt_of(&enabled.delete("/auth/twofa").await);
    assert_eq!(claims(&disabled)["roles"], json!(["user"]));
    env.portal("user@example.com", "password-of-test").await;
}

pub async fn password_changes_follow_the_original_rules(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let admin = env.portal_as("admin@example.com", true).await;
    let created = admin.post("/auth/create", json!({"email": "new@example.com"})).await;
    assert_eq!(created.keys(), ["email", "initialpassword"], "{}", created.describe());
    let initial = created.json["initialpassword"].as_str().unwrap().to_owned();
    assert_eq!(initial.chars().count(), 16, "{initial}");
    let user = env.portal("new@example.com", &initial).await;
    assert_eq!(user.claims()["status"], 0, "admin-created users must change their password");
    assert_eq!(user.claims()["roles"], json!(["user"]));

    let change = |old: &str, new: &str| json!({"oldPassword": old, "newPassword": new});
    let mode = ErrorMode::Original;
    mode.assert_business_error(
        &user.put("/auth/changepw", change("wrong", "new-password")).await,
        "Sorry, the password is incorrect.",
    );
    mode.assert_business_error(&user.put("/auth/changepw", change(&initial, "short")).await, "Sorry, bad new password");
    mode.assert_business_error(
        &user.put("/auth/changepw", json!({"oldPassword": initial})).await,
        "Sorry, bad new password",
    );
    mode.assert_business_error(
        &user.put("/auth/changepw", change(&initial, &initial)).await,
        "Sorry, the new password cannot be the same as the old password.",
    );
    let changed = jwt_of(&user.put("/auth/changepw", change(&initial, "new-password")).await);
    assert_eq!(claims(&changed)["status"], 1);
    assert_result(&env.login_reply("new@example.com", &initial, None).await, WRONG_LOGIN);
    let again = env.portal("new@example.com", "new-password").await;
    assert_eq!(again.claims()["status"], 1);
}

pub async fn only_admins_create_users_and_manage_customers(backend: Backend) {
    let mode = ErrorMode::ClientErrors;
    let env = TestEnv::start_with(backend, mode.serve_args()).await;
    let admin = env.portal_as("admin@example.com", true).await;
    let user = env.portal_as("user@example.com", false).await;
    assert_eq!(admin.claims()["roles"], json!(["user", "admin"]));

    // Non-admins: the role check comes first, whatever the body (a 4xx under `4xx`).
    for reply in [
        user.post("/auth/create", json!({"email": "admin@example.com"})).await,
        user.get("/customers").await,
        user.put("/customers/user@example.com", json!({"roles": "user,admin"})).await,
        user.delete("/customers/admin@example.com").await,
        user.delete("/customers/admin@example.com/twofa").await,
        user.get("/admin/devicestat").await,
        user.get("/admin/journal").await,
    ] {
        mode.assert_business_error(&reply, NOT_ALLOWED);
    }

    mode.assert_business_error(
        &admin.post("/auth/create", json!({"email": "user@example.com"})).await,
        "Sorry, this email is already in use.",
    );
    let created = admin.post("/auth/create", json!({"email": "third@example.com"})).await;
    assert_eq!(created.json["email"], "third@example.com");

    let customers = admin.get("/customers").await;
    let rows = customers.list();
    assert_eq!(rows.len(), 3, "{}", customers.describe());
    assert_eq!(customers.element_keys()[0], ["id", "created", "email", "display_name", "roles", "status", "info"]);
    let third = rows.iter().find(|row| row["email"] == "third@example.com").expect("the created user");
    assert_eq!((third["roles"].clone(), third["status"].clone()), (json!("user"), json!(0)));

    let update = json!({"display_name": "Third", "roles": "user,admin", "info": "{\"k\":\"v\"}"});
    assert_eq!(affected_rows(&admin.put("/customers/third@example.com", update).await), 1);
    let rows = admin.get("/customers").await.list();
    let third = rows.iter().find(|row| row["email"] == "third@example.com").unwrap();
    assert_eq!((third["display_name"].clone(), third["roles"].clone()), (json!("Third"), json!("user,admin")));
    assert_eq!(third["info"], "{\"k\":\"v\"}", "info is echoed as JSON text");
    mode.assert_status(&admin.put("/customers/third@example.com", json!({"display_name": "x"})).await, 500);

    // Resetting someone's two-factor login answers with that user's session.
    let reset = jwt_of(&admin.delete("/customers/user@example.com/twofa").await);
    assert_eq!(claims(&reset)["email"], "user@example.com");

    assert_eq!(affected_rows(&admin.delete("/customers/third@example.com").await), 1);
    assert_eq!(affected_rows(&admin.delete("/customers/third@example.com").await), 0);
    assert_eq!(admin.get("/customers").await.list().len(), 2);
}
