//! The ops of an authenticated address (fact sheet §4): `register`, `getinfo`, `setinfo` and
//! `balance`, each answered with one message carrying the op's nonce. What the ledger says
//! (`register`, `account`, `balance`) is signed by the server's key over the exact `data` text.

use cashgrid_actors::crypto::bitcoin_message::Address;
use cashgrid_actors::domain::ccc::{CccUser, InfoChanges, Profile, Registration};
use cashgrid_actors::domain::ledger::major_units;
use cashgrid_actors::engine::ccc::{ProfileAnswer, UserBalance};
use cashgrid_actors::{Engine, EngineError};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use super::protocol::{self, Op};

/// One op's reply: a message, and whether it reports a failure (for the metrics).
pub struct Reply {
    pub message: String,
    pub failed: bool,
}

impl Reply {
    pub fn error(nonce: Option<&Number>, text: &str) -> Self {
        Self { message: protocol::text("error", nonce, text), failed: true }
    }
}

/// Run an op of the authenticated `address`.
pub async fn run(engine: &Engine, address: &Address, op: &Op) -> Reply {
    let nonce = op.nonce.as_ref();
    let answer = match op.name.as_str() {
        "register" => register(engine, address, op).await,
        "getinfo" => account(engine, address, "account", nonce).await,
        "setinfo" => setinfo(engine, address, op).await,
        "balance" => balance(engine, address, op).await,
        other => return Reply::error(nonce, &format!("Unknown op: {}", printable(other))),
    };
    answer.unwrap_or_else(|error| Reply::error(nonce, &engine_error(&error)))
}

/// An op name as an error may quote it: short, printable.
pub fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(32).collect()
}

fn engine_error(error: &EngineError) -> String {
    match error {
        EngineError::Overloaded | EngineError::Unavailable => "Service busy, try again".into(),
        _ => {
            tracing::error!(%error, "ccc: op failed");
            "Internal error".into()
        }
    }
}

/// A signed message of the ledger's, `data` serialised once.
fn signed(engine: &Engine, msg: &str, nonce: Option<&Number>, data: &impl Serialize) -> Result<Reply, EngineError> {
    let data = serde_json::to_string(data).map_err(|error| EngineError::Internal(format!("encoding: {error}")))?;
    let signature = engine.ccc().sign(&data)?;
    Ok(Reply { message: protocol::render(msg, nonce, &data, Some(&signature)), failed: false })
}

/// A text param: `Err` names it when it is there but not a string.
fn text(params: &Map<String, Value>, name: &'static str) -> Result<Option<String>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

async fn register(engine: &Engine, address: &Address, op: &Op) -> Result<Reply, EngineError> {
    let nonce = op.nonce.as_ref();
    let read = || -> Result<Registration, String> {
        let required = |name| text(&op.params, name)?.ok_or_else(|| format!("register needs {name}"));
        let profile = Profile {
            name: required("name")?,
            email: required("email")?,
            country: required("country")?,
            currency: required("currency")?,
            street: text(&op.params, "address")?,
            phone: text(&op.params, "phone")?,
        };
        Ok(Registration { address: address.to_string(), profile })
    };
    let registration = match read() {
        Ok(registration) => registration,
        Err(message) => return Ok(Reply::error(nonce, &message)),
    };
    match engine.ccc().register(registration).await? {
        ProfileAnswer::Done(user) => {
            let balances = engine.ccc().balances(address.as_str()).await?;
            signed(engine, "register", nonce, &AccountData::of(engine, Some(&user), &balances))
        }
        answer => Ok(refusal(nonce, &answer)),
    }
}

async fn setinfo(engine: &Engine, address: &Address, op: &Op) -> Result<Reply, EngineError> {
    let nonce = op.nonce.as_ref();
    let read = || -> Result<InfoChanges, String> {
        Ok(InfoChanges {
            name: text(&op.params, "name")?,
            email: text(&op.params, "email")?,
            country: text(&op.params, "country")?,
            currency: text(&op.params, "currency")?,
            street: text(&op.params, "address")?,
            phone: text(&op.params, "phone")?,
        })
    };
    let changes = match read() {
        Ok(changes) => changes,
        Err(message) => return Ok(Reply::error(nonce, &message)),
    };
    match engine.ccc().set_info(address.as_str(), changes).await? {
        ProfileAnswer::Done(user) => {
            let balances = engine.ccc().balances(address.as_str()).await?;
            signed(engine, "account", nonce, &AccountData::of(engine, Some(&user), &balances))
        }
        answer => Ok(refusal(nonce, &answer)),
    }
}

fn refusal(nonce: Option<&Number>, answer: &ProfileAnswer) -> Reply {
    match answer {
        ProfileAnswer::Refused(rejection) => Reply::error(nonce, rejection.message()),
        ProfileAnswer::AlreadyRegistered => Reply::error(nonce, "Already registered"),
        ProfileAnswer::NotRegistered | ProfileAnswer::Done(_) => Reply::error(nonce, NOT_REGISTERED),
    }
}

const NOT_REGISTERED: &str = "Not registered: register first";

/// `getinfo`: the profile and balances; an address that has not registered gets
/// `isRegistered: false` (the D2 revision's flag) and nothing else.
async fn account(engine: &Engine, address: &Address, msg: &str, nonce: Option<&Number>) -> Result<Reply, EngineError> {
    let user = engine.ccc().user(address.as_str()).await?;
    let balances = match &user {
        Some(_) => engine.ccc().balances(address.as_str()).await?,
        None => Vec::new(),
    };
    signed(engine, msg, nonce, &AccountData::of(engine, user.as_ref(), &balances))
}

/// `balance`: currency → amount, the preferred currency always, others when not zero; or the
/// one currency asked for.
async fn balance(engine: &Engine, address: &Address, op: &Op) -> Result<Reply, EngineError> {
    let nonce = op.nonce.as_ref();
    let only = match text(&op.params, "currency") {
        Ok(only) => only,
        Err(message) => return Ok(Reply::error(nonce, &message)),
    };
    let Some(user) = engine.ccc().user(address.as_str()).await? else {
        return Ok(Reply::error(nonce, NOT_REGISTERED));
    };
    if let Some(code) = &only {
        if !engine.ccc().knows_currency(code) {
            return Ok(Reply::error(nonce, "Unknown currency"));
        }
    }
    let balances = engine.ccc().balances(address.as_str()).await?;
    let mut data = Map::new();
    let wanted = |code: &str| !matches!(only.as_deref(), Some(only) if only != code);
    for balance in &balances {
        let code = balance.currency.code();
        if wanted(code) && (balance.minor != 0 || code == user.profile.currency || only.is_some()) {
            data.insert(code.to_owned(), Value::String(major_units(balance.minor, balance.decimals)));
        }
    }
    // A currency without an account yet stands at zero.
    for code in [only.as_deref(), Some(user.profile.currency.as_str())].into_iter().flatten() {
        if wanted(code) && !data.contains_key(code) {
            let decimals = engine.ccc().decimals(code).unwrap_or(2);
            data.insert(code.to_owned(), Value::String(major_units(0, decimals)));
        }
    }
    signed(engine, "balance", nonce, &data)
}

/// The `account` message's data: both revisions' fields (D1: `iban`; D2: `isRegistered`,
/// `accounts`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
    is_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    iban: Option<&'a str>,
    is_registered: bool,
    accounts: Vec<AccountBalance>,
}

#[derive(Serialize)]
struct AccountBalance {
    currency: String,
    balance: String,
}

impl<'a> AccountData<'a> {
    fn of(engine: &Engine, user: Option<&'a CccUser>, balances: &[UserBalance]) -> Self {
        let mut accounts: Vec<AccountBalance> = balances
            .iter()
            .map(|balance| AccountBalance {
                currency: balance.currency.code().to_owned(),
                balance: major_units(balance.minor, balance.decimals),
            })
            .collect();
        if let Some(user) = user {
            let preferred = &user.profile.currency;
            if !accounts.iter().any(|account| account.currency == *preferred) {
                let zero = major_units(0, engine.ccc().decimals(preferred).unwrap_or(2));
                accounts.insert(0, AccountBalance { currency: preferred.clone(), balance: zero });
            }
        }
        let profile = user.map(|user| &user.profile);
        Self {
            name: profile.map(|profile| profile.name.as_str()),
            email: profile.map(|profile| profile.email.as_str()),
            address: profile.and_then(|profile| profile.street.as_deref()),
            phone: profile.and_then(|profile| profile.phone.as_deref()),
            country: profile.map(|profile| profile.country.as_str()),
            currency: profile.map(|profile| profile.currency.as_str()),
            is_verified: user.is_some_and(|user| user.verified),
            iban: user.and_then(|user| user.iban.as_deref()),
            is_registered: user.is_some(),
            accounts,
        }
    }
}
