//! The ops of an authenticated address (fact sheet §4): `register`, `getinfo`, `setinfo` and
//! `balance`, each answered with one message carrying the op's nonce. What the ledger says
//! (`register`, `account`, `balance`) is signed by the server's key over the exact `data` text.

use cashgrid_actors::crypto::bitcoin_message::Address;
use cashgrid_actors::domain::ccc::{parse_iban, CccUser, InfoChanges, Profile, Registration};
use cashgrid_actors::domain::ledger::{major_units, parse_major, Amount, MajorAmountError, TransferId};
use cashgrid_actors::domain::Millis;
use cashgrid_actors::engine::ccc::{HistoryQuery, Moved, PayoutStatus, ProfileAnswer, UserBalance, UserTransfer};
use cashgrid_actors::{Engine, EngineError};
use std::time::{Duration, Instant};

use cashgrid_actors::domain::ledger::Account;
use cashgrid_actors::store::LedgerEntry;
use serde::Serialize;
use serde_json::{Map, Number, Value};

use super::protocol::{self, Op};

/// One op's reply: its messages (one; `history` one per replayed transfer), and whether it
/// reports a failure (for the metrics).
pub struct Reply {
    pub messages: Vec<String>,
    pub failed: bool,
    /// The transfer the op made, if it made one.
    pub transfer: Option<TransferId>,
}

impl Reply {
    pub fn error(nonce: Option<&Number>, text: &str) -> Self {
        Self { messages: vec![protocol::text("error", nonce, text)], failed: true, transfer: None }
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
        "transfer" => transfer(engine, address, op).await,
        "history" => return history(engine, address, op).await,
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
    Ok(Reply { messages: vec![protocol::render(msg, nonce, &data, Some(&signature))], failed: false, transfer: None })
}

/// A text param: `Err` names it when it is there but not a string.
pub(super) fn text(params: &Map<String, Value>, name: &'static str) -> Result<Option<String>, String> {
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

/// An amount param, a string or a number of major units, as minor units of `decimals` places.
fn amount(value: Option<&Value>, decimals: u8) -> Result<Amount, &'static str> {
    let text = match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        None | Some(Value::Null) => return Err("transfer needs amount"),
        Some(_) => return Err("amount must be a string or a number"),
    };
    let minor = parse_major(&text, decimals).map_err(|error| match error {
        MajorAmountError::Malformed => "Invalid amount: a decimal number such as 1000.00",
        MajorAmountError::TooManyDecimals => "Invalid amount: more decimal places than the currency has",
        MajorAmountError::NotPositive => "Amount must be positive",
        MajorAmountError::TooLarge => "Amount too large",
    })?;
    Amount::new(minor).ok_or("Amount too large")
}

/// `transfer` to another user's address: one ledger transfer, answered with the `transfer`
/// message (the recipient is told through the journal's notifications).
async fn transfer(engine: &Engine, address: &Address, op: &Op) -> Result<Reply, EngineError> {
    let nonce = op.nonce.as_ref();
    if !engine.ccc().is_registered(address.as_str()).await? {
        return Ok(Reply::error(nonce, NOT_REGISTERED));
    }
    let recipient = match (text(&op.params, "destination"), text(&op.params, "recipient")) {
        (Ok(Some(recipient)), _) | (Ok(None), Ok(Some(recipient))) => recipient,
        (Err(message), _) | (_, Err(message)) => return Ok(Reply::error(nonce, &message)),
        (Ok(None), Ok(None)) => return Ok(Reply::error(nonce, "transfer needs destination (or recipient)")),
    };
    let currency = match text(&op.params, "currency") {
        Ok(Some(currency)) => currency,
        Ok(None) => return Ok(Reply::error(nonce, "transfer needs currency")),
        Err(message) => return Ok(Reply::error(nonce, &message)),
    };
    let Some(decimals) = engine.ccc().decimals(&currency) else {
        return Ok(Reply::error(nonce, "Unknown currency"));
    };
    let amount = match amount(op.params.get("amount"), decimals) {
        Ok(amount) => amount,
        Err(message) => return Ok(Reply::error(nonce, message)),
    };
    let moved = if Address::parse(&recipient).is_ok() {
        engine.ccc().transfer_to_user(address.as_str(), &recipient, &currency, amount).await?
    } else if let Some(iban) = parse_iban(&recipient) {
        engine.ccc().pay_out(address.as_str(), &iban, &currency, amount).await?
    } else if looks_like_iban(&recipient) {
        return Ok(Reply::error(nonce, "Invalid IBAN: check digits or format"));
    } else {
        return Ok(Reply::error(nonce, "Unknown recipient: neither a Bitcoin address nor an IBAN"));
    };
    match moved {
        Moved::Booked(transfer) | Moved::AlreadyBooked(transfer) => {
            let shown = engine.ccc().user_transfer(&transfer, false).await?;
            let reply = signed(engine, "transfer", nonce, &TransferData::of(&shown))?;
            Ok(Reply { transfer: Some(transfer.id), ..reply })
        }
        Moved::Refused(message) | Moved::NotFound(message) => Ok(Reply::error(nonce, message)),
    }
}

/// Two letters then two digits: meant as an IBAN (and refused as one when it is not valid).
fn looks_like_iban(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 4 && bytes[..2].iter().all(u8::is_ascii_alphabetic) && bytes[2..4].iter().all(u8::is_ascii_digit)
}

/// `history`: one `transfer` message per transfer, oldest first, each with the op's nonce.
async fn history(engine: &Engine, address: &Address, op: &Op) -> Reply {
    let nonce = op.nonce.as_ref();
    let query = match history_query(&op.params) {
        Ok(query) => query,
        Err(message) => return Reply::error(nonce, message),
    };
    let replay = async {
        if engine.ccc().user(address.as_str()).await?.is_none() {
            return Ok(Reply::error(nonce, NOT_REGISTERED));
        }
        let mut messages = Vec::new();
        for shown in engine.ccc().history(address.as_str(), query).await? {
            messages.extend(signed(engine, "transfer", nonce, &TransferData::of(&shown))?.messages);
        }
        Ok(Reply { messages, failed: false, transfer: None })
    };
    replay.await.unwrap_or_else(|error: EngineError| Reply::error(nonce, &engine_error(&error)))
}

fn history_query(params: &Map<String, Value>) -> Result<HistoryQuery, &'static str> {
    let whole = |name: &str| match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number.as_u64().map(Some).ok_or(()),
        Some(Value::String(text)) => text.parse::<u64>().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    };
    let limit = whole("limit").map_err(|()| "limit must be a whole number")?;
    let since_time = whole("sinceTime").map_err(|()| "sinceTime must be a Unix time in milliseconds")?;
    let since_transaction = match params.get("sinceTransaction") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(TransferId(text.parse().map_err(|_| "sinceTransaction is not a txid")?)),
        Some(_) => return Err("sinceTransaction is not a txid"),
    };
    Ok(HistoryQuery {
        limit: limit.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX)),
        since_transaction,
        since_time: since_time.map(|time| Millis::try_from(time).unwrap_or(Millis::MAX)),
    })
}

/// The `transfer` message's data: the seed's (D1) fields, then the revised ones (D2).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransferData<'a> {
    txid: String,
    /// Unix time in seconds of this step.
    timestamp: i64,
    sender: &'a str,
    destination: &'a str,
    currency: &'a str,
    amount: String,
    /// Payouts to an IBAN only: `pending`, `complete` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    /// Failed payouts only: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    id: String,
    date_created: i64,
    date_updated: i64,
    recipient: &'a str,
    is_completed: bool,
    is_failed: bool,
}

impl<'a> TransferData<'a> {
    fn of(shown: &'a UserTransfer) -> Self {
        let seconds = |millis: i64| millis.div_euclid(1_000);
        let (status, message, is_completed, is_failed) = match &shown.status {
            None => (None, None, true, false),
            Some(PayoutStatus::Pending) => (Some("pending"), None, false, false),
            Some(PayoutStatus::Complete) => (Some("complete"), None, true, false),
            Some(PayoutStatus::Failed(reason)) => (Some("failed"), Some(reason.as_str()), true, true),
        };
        Self {
            txid: shown.txid.to_string(),
            timestamp: seconds(shown.updated),
            sender: &shown.sender,
            destination: &shown.destination,
            currency: shown.currency.code(),
            amount: major_units(i128::from(shown.amount.get()), shown.decimals),
            status,
            message,
            id: shown.txid.to_string(),
            date_created: seconds(shown.created),
            date_updated: seconds(shown.updated),
            recipient: &shown.destination,
            is_completed,
            is_failed,
        }
    }
}

/// How long a socket's notifications may show a profile before reading it again (another
/// socket or node may have changed it).
const PROFILE_FRESH: Duration = Duration::from_secs(1);

/// What a socket's `account` notifications show: the profile, read again at most every
/// [`PROFILE_FRESH`], and the accounts with their sums, kept current from the journal lines the
/// socket follows (each notification shows the balances right after its transfer).
pub struct Shown {
    user: Option<CccUser>,
    read: Instant,
    accounts: Vec<Account>,
}

/// The unsolicited messages of a journal line of `address`'s: the transfer (unless `own`: its
/// maker was answered already) and the fresh balances as an `account`, without a nonce.
pub async fn notifications(
    engine: &Engine,
    address: &Address,
    line: &LedgerEntry,
    shown: &UserTransfer,
    own: bool,
    state: &mut Option<Shown>,
) -> Vec<String> {
    let messages = async {
        let mut messages = Vec::new();
        if !own {
            messages.extend(signed(engine, "transfer", None, &TransferData::of(shown))?.messages);
        }
        let ccc = engine.ccc();
        let known = state.as_ref().is_some_and(|known| known.accounts.iter().any(|account| account.id == line.account));
        match state {
            Some(known_state) if known => {
                if known_state.read.elapsed() > PROFILE_FRESH {
                    known_state.user = ccc.user(address.as_str()).await?;
                    known_state.read = Instant::now();
                }
            }
            _ => {
                let user = ccc.user(address.as_str()).await?;
                let accounts = ccc.accounts(address.as_str()).await?;
                *state = Some(Shown { user, read: Instant::now(), accounts });
            }
        }
        if let Some(known_state) = state.as_mut() {
            if let Some(account) = known_state.accounts.iter_mut().find(|account| account.id == line.account) {
                account.balances = line.balances;
            }
            let balances = ccc.balances_of(&known_state.accounts);
            let data = AccountData::of(engine, known_state.user.as_ref(), &balances);
            messages.extend(signed(engine, "account", None, &data)?.messages);
        }
        Ok::<_, EngineError>(messages)
    };
    messages.await.unwrap_or_else(|error| {
        tracing::warn!(%error, "ccc: a notification could not be made");
        Vec::new()
    })
}
