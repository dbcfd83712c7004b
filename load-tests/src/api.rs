//! The dncash-io calls the scenarios make, each as a named goose request, and the checks on
//! their answers. Expected refusals (a lost race for a hot token, a wrong code) are marked as
//! successes with `set_success`; anything else unexpected is a goose failure with its body.

use std::sync::OnceLock;
use std::time::Instant;

use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use rand::Rng as _;
use serde_json::{json, Value};

use crate::fixture::{Context, Credentials, Phone};

/// The fixture, parsed once before the attack starts.
static CONTEXT: OnceLock<Context> = OnceLock::new();

/// The answer to a second claim of a token that is no longer OPEN.
pub const NOT_OPEN: &str = "Token not in OPEN state.";
/// The answer to a claim with a wrong secure code (the token is then REJECTED).
pub const INVALID_CODE: &str = "Invalid token code";

pub const TOKENS_PATH: &str = "/dnapi/token/v1/tokens";
pub const CASH_TOKENS_PATH: &str = "/dnapi/cash/v1/tokens";

pub fn install(context: Context) -> bool {
    CONTEXT.set(context).is_ok()
}

pub fn context() -> Result<&'static Context, Box<TransactionError>> {
    CONTEXT.get().ok_or_else(|| {
        Box::new(TransactionError::Custom(
            "no fixture loaded: run the setup binary and point CASHGRID_LOAD_FIXTURE at its output".into(),
        ))
    })
}

#[derive(Clone, Copy)]
pub enum Api {
    Token,
    Cash,
    /// The Ledger API with the fixture's operator credentials.
    Ledger,
}

impl Api {
    fn credentials(self, context: &Context) -> Result<&Credentials, Box<TransactionError>> {
        match self {
            Self::Token => Ok(&context.fixture.token_api),
            Self::Cash => Ok(&context.fixture.cash_api),
            Self::Ledger => Ok(&ledger()?.operator),
        }
    }
}

/// The fixture's ledger accounts.
pub fn ledger() -> Result<&'static crate::fixture::LedgerFixture, Box<TransactionError>> {
    context()?.fixture.ledger.as_ref().ok_or_else(|| {
        Box::new(TransactionError::Custom("the fixture has no ledger accounts: run setup with --ledger-accounts".into()))
    })
}

/// One answered request: status, body, and the goose metric to correct if needed.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub metric: GooseRequestMetric,
}

impl Reply {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The `error` text of a dncash-io error body.
    pub fn error_text(&self) -> Option<String> {
        self.json()?.get("error")?.as_str().map(str::to_owned)
    }
}

/// Send one authenticated request named `name` (see [`send`]).
pub async fn call(
    user: &mut GooseUser,
    api: Api,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<&Value>,
) -> Result<Reply, Box<TransactionError>> {
    let context = context()?;
    let credentials = api.credentials(context)?;
    let mut builder = user
        .get_request_builder(&method, path)?
        .header("DN-API-KEY", credentials.apikey.as_str())
        .header("DN-API-SECRET", credentials.apisecret.as_str());
    if let Some(body) = body {
        builder = builder.header("Content-Type", "application/json").body(body.to_string());
    }
    let request = GooseRequest::builder().method(method).path(path).name(name).set_request_builder(builder).build();
    send(user, request).await
}

/// Send a built request and read its answer. A transport error ends the transaction (goose has
/// already counted the request as failed).
async fn send(user: &mut GooseUser, request: GooseRequest<'_>) -> Result<Reply, Box<TransactionError>> {
    let goose = user.request(request).await?;
    match goose.response {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            Ok(Reply { status, body, metric: goose.request })
        }
        Err(_) => Err(Box::new(TransactionError::RequestFailed { raw_request: Box::new(goose.request) })),
    }
}

/// Mark `reply` failed with `tag` (and its body in the debug log) and end the transaction.
pub fn fail<T>(user: &mut GooseUser, reply: &mut Reply, tag: &str) -> Result<T, Box<TransactionError>> {
    user.set_failure(tag, &mut reply.metric, None, Some(&reply.body))?;
    Err(Box::new(TransactionError::Custom(tag.to_owned())))
}

/// Require a 200.
pub fn expect_ok(user: &mut GooseUser, reply: &mut Reply, tag: &str) -> TransactionResult {
    if reply.status == 200 {
        Ok(())
    } else {
        fail(user, reply, tag)
    }
}

/// Require a 403 with exactly `error` as its text; counted as a success, since it is the
/// protocol's correct answer.
pub fn expect_refusal(user: &mut GooseUser, reply: &mut Reply, error: &str, tag: &str) -> TransactionResult {
    if reply.status == 403 && reply.error_text().as_deref() == Some(error) {
        user.set_success(&mut reply.metric)
    } else {
        fail(user, reply, tag)
    }
}

pub fn random_phone(context: &'static Context) -> &'static Phone {
    let phones = &context.fixture.phones;
    &phones[rand::thread_rng().gen_range(0..phones.len())]
}

/// The ATM this goose user stands for: users share the fixture's ATMs round-robin.
pub fn atm_of(user: &GooseUser) -> Result<&'static str, Box<TransactionError>> {
    let atms = &context()?.fixture.atms;
    Ok(&atms[user.weighted_users_index % atms.len()])
}

/// A token issued to a phone, with the radiocode the phone would show.
pub struct Issued {
    pub uuid: String,
    pub phone: &'static Phone,
    pub radiocode: Option<String>,
}

/// `POST /tokens` for a random phone as request `name`; with `decrypt_as` the secure code is
/// then decrypted (recorded as a custom "RSA" request of that name) into a radiocode.
pub async fn issue(user: &mut GooseUser, name: &str, decrypt_as: Option<&str>) -> Result<Issued, Box<TransactionError>> {
    let context = context()?;
    let phone = random_phone(context);
    let body = json!({
        "device_uuid": phone.uuid,
        "amount": 10000,
        "symbol": "EUR",
        "refname": format!("load-{}", user.weighted_users_index),
    });
    let mut reply = call(user, Api::Token, GooseMethod::Post, TOKENS_PATH, name, Some(&body)).await?;
    expect_ok(user, &mut reply, "create: expected 200")?;
    let parsed = reply.json();
    let field = |key: &str| parsed.as_ref().and_then(|v| v.get(key)).and_then(Value::as_str).map(str::to_owned);
    let (Some(uuid), Some(secure_code)) = (field("uuid"), field("secure_code")) else {
        return fail(user, &mut reply, "create: answer without uuid or secure_code");
    };
    let radiocode = match decrypt_as {
        None => None,
        Some(decrypt_name) => {
            let started = Instant::now();
            let result = context.radiocode(phone, &uuid, &secure_code);
            let ok = result.is_ok();
            user.record_custom_request_duration(
                "RSA",
                decrypt_name,
                started.elapsed(),
                ok,
                None,
                (!ok).then_some("decrypt failed"),
            )
            .await?;
            match result {
                Ok(radiocode) => Some(radiocode),
                Err(error) => return Err(Box::new(TransactionError::Custom(format!("{error:#}")))),
            }
        }
    };
    Ok(Issued { uuid, phone, radiocode })
}

/// `GET /cash/v1/tokens/<radiocode>?device_uuid=<atm>`.
pub async fn claim(user: &mut GooseUser, atm: &str, radiocode: &str, name: &str) -> Result<Reply, Box<TransactionError>> {
    let path = format!("{CASH_TOKENS_PATH}/{radiocode}?device_uuid={atm}");
    call(user, Api::Cash, GooseMethod::Get, &path, name, None).await
}

/// `PUT /cash/v1/tokens/<uuid>?device_uuid=<atm>` with a final state.
pub async fn confirm(
    user: &mut GooseUser,
    atm: &str,
    token: &str,
    state: &str,
    name: &str,
) -> Result<Reply, Box<TransactionError>> {
    let path = format!("{CASH_TOKENS_PATH}/{token}?device_uuid={atm}");
    let body = json!({ "state": state, "lockrefname": format!("load-{}", user.weighted_users_index) });
    call(user, Api::Cash, GooseMethod::Put, &path, name, Some(&body)).await
}

pub const CASH_TRIGGER_PATH: &str = "/dnapi/cash/v1/trigger";
pub const MOBILE_TRIGGER_PATH: &str = "/dnapi/mobile/v1/trigger";

/// `POST /cash/v1/trigger?device_uuid=<atm>`: a fresh trigger code for the ATM's screen.
pub async fn create_trigger(user: &mut GooseUser, atm: &str, name: &str) -> Result<Reply, Box<TransactionError>> {
    let path = format!("{CASH_TRIGGER_PATH}?device_uuid={atm}");
    call(user, Api::Cash, GooseMethod::Post, &path, name, None).await
}

/// What the ATM's long poll got: status, body, and when the answer arrived.
pub type PollAnswer = Result<(u16, String, Instant), String>;

/// The ATM's long poll `GET /cash/v1/trigger/<code>`, sent on the user's HTTP client but outside
/// goose's request loop, so that it waits while the same user acts as the phone. Bounded by
/// `timeout`; the caller records it as a custom request.
pub fn spawn_trigger_poll(
    user: &GooseUser,
    code: &str,
    timeout: std::time::Duration,
) -> Result<tokio::task::JoinHandle<PollAnswer>, Box<TransactionError>> {
    let credentials = &context()?.fixture.cash_api;
    let url = user
        .base_url
        .join(&format!("{CASH_TRIGGER_PATH}/{code}"))
        .map_err(|error| Box::new(TransactionError::Custom(format!("trigger poll url: {error}"))))?;
    let request = user
        .client
        .get(url)
        .header("DN-API-KEY", credentials.apikey.as_str())
        .header("DN-API-SECRET", credentials.apisecret.as_str());
    Ok(tokio::spawn(async move {
        let answer = async {
            let response = request.send().await.map_err(|error| error.to_string())?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(|error| error.to_string())?;
            Ok((status, body, Instant::now()))
        };
        tokio::time::timeout(timeout, answer)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    }))
}

/// The phone's `POST /mobile/v1/trigger` (no credentials): 204 once the token is locked.
pub async fn phone_trigger(user: &mut GooseUser, body: &Value, name: &str) -> Result<Reply, Box<TransactionError>> {
    let builder = user
        .get_request_builder(&GooseMethod::Post, MOBILE_TRIGGER_PATH)?
        .header("Content-Type", "application/json")
        .body(body.to_string());
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(MOBILE_TRIGGER_PATH)
        .name(name)
        .set_request_builder(builder)
        .build();
    send(user, request).await
}
