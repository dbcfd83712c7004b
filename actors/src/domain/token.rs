//! The cash token state machine.
//!
//! `apply(token, command, now)` is pure: it decides, the actor persists. A command either is
//! refused with no change (`Err`) or yields a `Transition` to persist before answering. Some
//! transitions still answer with a rejection: a wrong code moves OPEN to REJECTED *and* tells
//! the ATM "Invalid token code", exactly as the original does.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::clearing::{clearing_for, Clearing};
use super::{CustomerId, Millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenState {
    Open,
    Locked,
    Completed,
    Canceled,
    Failed,
    Rejected,
    Retracted,
    Deleted,
    Expired,
}

impl TokenState {
    pub const ALL: [Self; 9] = [
        Self::Open,
        Self::Locked,
        Self::Completed,
        Self::Canceled,
        Self::Failed,
        Self::Rejected,
        Self::Retracted,
        Self::Deleted,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Locked => "LOCKED",
            Self::Completed => "COMPLETED",
            Self::Canceled => "CANCELED",
            Self::Failed => "FAILED",
            Self::Rejected => "REJECTED",
            Self::Retracted => "RETRACTED",
            Self::Deleted => "DELETED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str().eq_ignore_ascii_case(text))
    }

    /// Final states keep no codes and accept no further transition.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Open | Self::Locked)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenType {
    Cashout,
    Cashin,
    Transfer,
    Payment,
    Other,
}

impl TokenType {
    pub const ALL: [Self; 5] = [Self::Cashout, Self::Cashin, Self::Transfer, Self::Payment, Self::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cashout => "CASHOUT",
            Self::Cashin => "CASHIN",
            Self::Transfer => "TRANSFER",
            Self::Payment => "PAYMENT",
            Self::Other => "OTHER",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str().eq_ignore_ascii_case(text))
    }
}

/// The final states a cash device may confirm a LOCKED token into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmState {
    Completed,
    Canceled,
    Failed,
    Rejected,
    Retracted,
}

impl ConfirmState {
    pub fn parse(text: &str) -> Option<Self> {
        match TokenState::parse(text)? {
            TokenState::Completed => Some(Self::Completed),
            TokenState::Canceled => Some(Self::Canceled),
            TokenState::Failed => Some(Self::Failed),
            TokenState::Rejected => Some(Self::Rejected),
            TokenState::Retracted => Some(Self::Retracted),
            TokenState::Open | TokenState::Locked | TokenState::Deleted | TokenState::Expired => None,
        }
    }

    pub fn state(self) -> TokenState {
        match self {
            Self::Completed => TokenState::Completed,
            Self::Canceled => TokenState::Canceled,
            Self::Failed => TokenState::Failed,
            Self::Rejected => TokenState::Rejected,
            Self::Retracted => TokenState::Retracted,
        }
    }
}

/// A token's full state: what the actor holds and the store snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub uuid: Uuid,
    /// Incremented by every transition; the store applies a snapshot only over its predecessor.
    pub version: i64,
    pub created: Millis,
    pub updated: Option<Millis>,
    pub token_type: TokenType,
    pub plain_code: Option<String>,
    /// Base64 RSA ciphertext of the secure code for the owner's phone; `""` once cleared.
    pub secure_code: String,
    /// Keyed hash of the secure code, the only form in which the code is kept.
    pub code_hash: Option<Vec<u8>>,
    pub amount: i64,
    pub symbol: String,
    pub state: TokenState,
    pub clearstate: i64,
    pub expires: Option<Millis>,
    pub refname: Option<String>,
    pub lockrefname: Option<String>,
    pub info: Option<Value>,
    pub processing_info: Option<Value>,
    pub owner_id: CustomerId,
    pub owner_device: Uuid,
    pub lock_device: Option<Uuid>,
    pub lock_customer_id: Option<CustomerId>,
}

/// What a bank asks for when it issues a token; codes are made by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub uuid: Uuid,
    pub owner_id: CustomerId,
    pub owner_device: Uuid,
    pub token_type: TokenType,
    pub amount: i64,
    pub symbol: String,
    pub expires: Option<Millis>,
    pub refname: Option<String>,
    pub clearstate: i64,
    pub info: Option<Value>,
    pub plain_code: Option<String>,
    pub secure_code: String,
    pub code_hash: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenCommand {
    /// Verify and lock (Cash API claim or Mobile trigger). `code_matches` is the result of the
    /// keyed-hash comparison the shell made: the domain never sees the key.
    Claim { cash_device: Uuid, cash_customer: CustomerId, code_matches: bool },
    /// A claim through a trigger code (Mobile API): the phone's signature over trigger code and
    /// radiocode is checked before the code. `signature_valid` is the shell's verification
    /// with the token device's key; a bad signature rejects the token like a wrong code.
    TriggerClaim { cash_device: Uuid, cash_customer: CustomerId, signature_valid: bool, code_matches: bool },
    /// Finish a LOCKED token. `state` is `None` when the requested value is not a final state.
    Confirm {
        cash_device: Uuid,
        cash_customer: CustomerId,
        state: Option<ConfirmState>,
        amount: Option<i64>,
        lockrefname: Option<String>,
        processing_info: Option<Value>,
        /// Set when the confirming cash customer has PARTIAL_CASHOUTS on; the id of the
        /// remainder token that an under-amount confirm spawns.
        remainder: Option<Uuid>,
    },
    /// The owner changes its bookkeeping fields.
    Update { caller: CustomerId, clearstate: Option<i64>, info: Option<Value> },
    /// The owner withdraws an OPEN token, naming the device it was issued to.
    Delete { caller: CustomerId, device: Uuid },
    /// Time has passed `expires` while the token was OPEN.
    Expire,
}

/// The largest amount a token carries, in minor units: 2^53 - 1, the largest integer that the
/// original's JavaScript clients read exactly. Totals of many amounts are summed exactly in
/// 128 bits (see `store::TokenStat`), so no sum overflows.
pub const AMOUNT_MAX: i64 = (1 << 53) - 1;

/// Whether `amount` is one a token may carry: 0 to [`AMOUNT_MAX`].
pub fn amount_in_range(amount: i64) -> bool {
    (0..=AMOUNT_MAX).contains(&amount)
}

/// The range of `expires`, in epoch milliseconds: 1970-01-01T00:00:00.000Z to
/// 9999-12-31T23:59:59.999Z, the instants an RFC 3339 date-time with a four-digit year can name
/// after the epoch. The original stored `expires` in a MySQL TIMESTAMP, which refuses anything
/// outside 1970..2038; cashgrid keeps the lower bound and lifts the upper one.
pub const EXPIRES_MIN: Millis = 0;
pub const EXPIRES_MAX: Millis = 253_402_300_799_999;

/// Whether `expires` is an instant a token may expire at.
pub fn expires_in_range(expires: Millis) -> bool {
    (EXPIRES_MIN..=EXPIRES_MAX).contains(&expires)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenRejection {
    /// The caller may not see this token (or it does not exist for it).
    NotFound,
    NotOpen,
    NotLocked,
    InvalidCode,
    /// A trigger claim whose signature did not verify (the token is rejected).
    InvalidSignature,
    LockedByAnotherDevice,
    InvalidConfirmState,
    IllegalAmountIncrease,
    /// An amount below 0 or above [`AMOUNT_MAX`]. Deliberate improvement: the original accepts
    /// negative amounts, which creates money, and any 64-bit amount, whose sums overflow.
    AmountOutOfRange,
    /// An `expires` outside [`EXPIRES_MIN`]..=[`EXPIRES_MAX`]: it has no date-time to render.
    ExpiresOutOfRange,
    /// An update that names neither `clearstate` nor `info`.
    NothingToUpdate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEventKind {
    Created,
    Locked,
    Rejected,
    Confirmed,
    Updated,
    Deleted,
    Expired,
}

impl TokenEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Locked => "locked",
            Self::Rejected => "rejected",
            Self::Confirmed => "confirmed",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Expired => "expired",
        }
    }
}

/// One state change, written in the same commit as the snapshot it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEvent {
    pub token: Uuid,
    pub kind: TokenEventKind,
    pub from: Option<TokenState>,
    pub to: TokenState,
    pub at: Millis,
    pub owner_id: CustomerId,
    /// The cash side's customer, for events a cash device caused.
    pub cash_customer_id: Option<CustomerId>,
    /// Snapshot version this event produced.
    pub version: i64,
}

/// A decided change: persist `token` (and `spawned`, if any) with `events`, then answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub token: Token,
    pub spawned: Option<Token>,
    pub events: Vec<TokenEvent>,
    pub answer: Result<(), TokenRejection>,
    /// The clearing row to write with this transition (a COMPLETED cash-out or cash-in).
    pub clearing: Option<Clearing>,
}

impl Transition {
    /// One successor snapshot with its one event: no spawned token, no clearing row.
    fn of(token: Token, event: TokenEvent) -> Self {
        Self { token, spawned: None, events: vec![event], answer: Ok(()), clearing: None }
    }
}

impl Token {
    /// A newly issued OPEN token and its creation event.
    pub fn issue(issue: Issue, now: Millis) -> Result<(Self, TokenEvent), TokenRejection> {
        if !amount_in_range(issue.amount) {
            return Err(TokenRejection::AmountOutOfRange);
        }
        if issue.expires.is_some_and(|expires| !expires_in_range(expires)) {
            return Err(TokenRejection::ExpiresOutOfRange);
        }
        let token = Self {
            uuid: issue.uuid,
            version: 1,
            created: now,
            updated: None,
            token_type: issue.token_type,
            plain_code: issue.plain_code,
            secure_code: issue.secure_code,
            code_hash: Some(issue.code_hash),
            amount: issue.amount,
            symbol: issue.symbol,
            state: TokenState::Open,
            clearstate: issue.clearstate,
            expires: issue.expires,
            refname: issue.refname,
            lockrefname: None,
            info: issue.info,
            processing_info: None,
            owner_id: issue.owner_id,
            owner_device: issue.owner_device,
            lock_device: None,
            lock_customer_id: None,
        };
        let event = token.event(TokenEventKind::Created, None, now, None);
        Ok((token, event))
    }

    /// The public state of the token, without either code: what event rows, live feeds and
    /// the journal carry.
    pub fn snapshot_json(&self) -> Value {
        serde_json::json!({
            "uuid": self.uuid.to_string(),
            "version": self.version,
            "created": self.created,
            "updated": self.updated,
            "type": self.token_type.as_str(),
            "amount": self.amount,
            "symbol": self.symbol,
            "state": self.state.as_str(),
            "clearstate": self.clearstate,
            "expires": self.expires,
            "refname": self.refname,
            "lockrefname": self.lockrefname,
            "info": self.info,
            "processing_info": self.processing_info,
            "owner_id": self.owner_id,
            "owner_device": self.owner_device.to_string(),
            "lock_device": self.lock_device.map(|device| device.to_string()),
            "lock_customer_id": self.lock_customer_id,
        })
    }

    pub fn is_expired_at(&self, now: Millis) -> bool {
        self.state == TokenState::Open && self.expires.is_some_and(|expires| expires < now)
    }

    fn event(
        &self,
        kind: TokenEventKind,
        from: Option<TokenState>,
        at: Millis,
        cash_customer_id: Option<CustomerId>,
    ) -> TokenEvent {
        TokenEvent {
            token: self.uuid,
            kind,
            from,
            to: self.state,
            at,
            owner_id: self.owner_id,
            cash_customer_id,
            version: self.version,
        }
    }

    fn clear_codes(&mut self) {
        self.plain_code = None;
        self.secure_code.clear();
        self.code_hash = None;
    }

    /// The successor snapshot: same token, next version.
    fn next(&self) -> Self {
        let mut next = self.clone();
        next.version += 1;
        next
    }
}

impl super::entity::Entity for Token {
    const KIND: &'static str = "token";
    type Id = Uuid;
    type Create = Issue;
    type Command = TokenCommand;
    type Event = TokenEvent;
    type Rejection = TokenRejection;
    type Transition = Transition;

    fn id(&self) -> Uuid {
        self.uuid
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn is_final(&self) -> bool {
        self.state.is_final()
    }

    fn create(issue: Issue, now: Millis) -> Result<Transition, TokenRejection> {
        let (token, event) = Token::issue(issue, now)?;
        Ok(Transition::of(token, event))
    }

    fn apply(&self, command: &TokenCommand, now: Millis) -> Result<Transition, TokenRejection> {
        apply(self, command, now)
    }

    /// The indexed columns of the `tokens` table.
    fn index_columns(&self) -> Vec<(&'static str, String)> {
        let mut columns = vec![
            ("owner_id", self.owner_id.to_string()),
            ("owner_device", self.owner_device.to_string()),
            ("state", self.state.as_str().to_owned()),
        ];
        columns.extend(self.plain_code.clone().map(|code| ("plain_code", code)));
        columns
    }
}

/// Decide what `command` does to `token` at time `now`.
pub fn apply(token: &Token, command: &TokenCommand, now: Millis) -> Result<Transition, TokenRejection> {
    match command {
        TokenCommand::Claim { cash_device, cash_customer, code_matches } => {
            claim(token, *cash_device, *cash_customer, Ok(*code_matches), now)
        }
        TokenCommand::TriggerClaim { cash_device, cash_customer, signature_valid, code_matches } => {
            let verified = if *signature_valid { Ok(*code_matches) } else { Err(TokenRejection::InvalidSignature) };
            claim(token, *cash_device, *cash_customer, verified, now)
        }
        TokenCommand::Confirm {
            cash_device,
            cash_customer,
            state,
            amount,
            lockrefname,
            processing_info,
            remainder,
        } => confirm(
            token,
            Confirmation {
                cash_device: *cash_device,
                cash_customer: *cash_customer,
                state: *state,
                amount: *amount,
                lockrefname: lockrefname.clone(),
                processing_info: processing_info.clone(),
                remainder: *remainder,
            },
            now,
        ),
        TokenCommand::Update { caller, clearstate, info } => update(token, *caller, *clearstate, info.clone(), now),
        TokenCommand::Delete { caller, device } => delete(token, *caller, *device, now),
        TokenCommand::Expire => expire(token, now).ok_or(TokenRejection::NotOpen),
    }
}

fn expire(token: &Token, now: Millis) -> Option<Transition> {
    if !token.is_expired_at(now) {
        return None;
    }
    let mut next = token.next();
    next.state = TokenState::Expired;
    next.clear_codes();
    let event = next.event(TokenEventKind::Expired, Some(token.state), now, None);
    Some(Transition::of(next, event))
}

/// `verified`: `Ok(code_matches)`, or the reason the presented proof failed before the code
/// was looked at (a trigger claim's bad signature).
fn claim(
    token: &Token,
    cash_device: Uuid,
    cash_customer: CustomerId,
    verified: Result<bool, TokenRejection>,
    now: Millis,
) -> Result<Transition, TokenRejection> {
    // The original sweeps expired tokens before looking at the claimed one.
    if let Some(mut expired) = expire(token, now) {
        expired.answer = Err(TokenRejection::NotOpen);
        return Ok(expired);
    }
    if token.state != TokenState::Open {
        return Err(TokenRejection::NotOpen);
    }
    let mut next = token.next();
    next.updated = Some(now);
    next.lock_device = Some(cash_device);
    next.lock_customer_id = Some(cash_customer);
    let failure = match verified {
        Ok(true) => None,
        Ok(false) => Some(TokenRejection::InvalidCode),
        Err(reason) => Some(reason),
    };
    let (kind, answer) = match failure {
        None => {
            next.state = TokenState::Locked;
            (TokenEventKind::Locked, Ok(()))
        }
        Some(reason) => {
            // Any wrong code or signature kills the token: no guessing rounds.
            next.state = TokenState::Rejected;
            next.clear_codes();
            (TokenEventKind::Rejected, Err(reason))
        }
    };
    let event = next.event(kind, Some(token.state), now, Some(cash_customer));
    Ok(Transition { answer, ..Transition::of(next, event) })
}

struct Confirmation {
    cash_device: Uuid,
    cash_customer: CustomerId,
    state: Option<ConfirmState>,
    amount: Option<i64>,
    lockrefname: Option<String>,
    processing_info: Option<Value>,
    remainder: Option<Uuid>,
}

fn confirm(token: &Token, confirmation: Confirmation, now: Millis) -> Result<Transition, TokenRejection> {
    // Check order follows the original so that ATMs see the same first error.
    if token.lock_device != Some(confirmation.cash_device) {
        return Err(TokenRejection::LockedByAnotherDevice);
    }
    let final_state = confirmation.state.ok_or(TokenRejection::InvalidConfirmState)?;
    let amount = confirmation.amount.unwrap_or(token.amount);
    if !amount_in_range(amount) {
        return Err(TokenRejection::AmountOutOfRange);
    }
    if token.token_type == TokenType::Cashout && amount > token.amount {
        return Err(TokenRejection::IllegalAmountIncrease);
    }
    if token.state != TokenState::Locked {
        return Err(TokenRejection::NotLocked);
    }
    let mut next = token.next();
    next.state = final_state.state();
    next.amount = amount;
    next.lockrefname = confirmation.lockrefname;
    next.processing_info = confirmation.processing_info;
    next.updated = Some(now);
    next.clear_codes();
    let mut events =
        vec![next.event(TokenEventKind::Confirmed, Some(token.state), now, Some(confirmation.cash_customer))];
    let spawned = match confirmation.remainder {
        Some(uuid) if amount < token.amount => {
            let remainder = remainder_of(token, uuid, token.amount - amount, now);
            events.push(remainder.event(TokenEventKind::Created, None, now, None));
            Some(remainder)
        }
        Some(_) | None => None,
    };
    let clearing = clearing_for(next.token_type, next.state, next.owner_id, confirmation.cash_customer, now);
    Ok(Transition { token: next, spawned, events, answer: Ok(()), clearing })
}

/// The rest of a partial cash-out: a fresh OPEN token that the same radiocode claims.
fn remainder_of(token: &Token, uuid: Uuid, amount: i64, now: Millis) -> Token {
    Token {
        uuid,
        version: 1,
        created: now,
        updated: None,
        amount,
        state: TokenState::Open,
        lockrefname: None,
        lock_device: None,
        lock_customer_id: None,
        info: Some(serde_json::json!({ "partial_from_uuid": token.uuid.to_string() })),
        ..token.clone()
    }
}

fn update(
    token: &Token,
    caller: CustomerId,
    clearstate: Option<i64>,
    info: Option<Value>,
    now: Millis,
) -> Result<Transition, TokenRejection> {
    if token.owner_id != caller {
        return Err(TokenRejection::NotFound);
    }
    if clearstate.is_none() && info.is_none() {
        return Err(TokenRejection::NothingToUpdate);
    }
    let mut next = token.next();
    if let Some(clearstate) = clearstate {
        next.clearstate = clearstate;
    }
    if info.is_some() {
        next.info = info;
    }
    // The original does not touch `updated` here; neither do we.
    let event = next.event(TokenEventKind::Updated, Some(token.state), now, None);
    Ok(Transition::of(next, event))
}

fn delete(token: &Token, caller: CustomerId, device: Uuid, now: Millis) -> Result<Transition, TokenRejection> {
    if token.owner_id != caller || token.owner_device != device || token.state != TokenState::Open {
        return Err(TokenRejection::NotFound);
    }
    let mut next = token.next();
    next.state = TokenState::Deleted;
    next.clear_codes();
    let event = next.event(TokenEventKind::Deleted, Some(token.state), now, None);
    Ok(Transition::of(next, event))
}

/// An OPEN cash-out of 100 EUR issued at `now`, for the tests of the shells around the domain.
#[cfg(test)]
pub(crate) fn issued_for_tests(now: Millis) -> Token {
    let issue = Issue {
        uuid: Uuid::new_v4(),
        owner_id: 1,
        owner_device: Uuid::new_v4(),
        token_type: TokenType::Cashout,
        amount: 100,
        symbol: "EUR".into(),
        expires: None,
        refname: None,
        clearstate: 0,
        info: None,
        plain_code: None,
        secure_code: "cipher".into(),
        code_hash: vec![1],
    };
    match Token::issue(issue, now) {
        Ok((token, _)) => token,
        Err(rejection) => panic!("issue failed: {rejection:?}"),
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
