//! The token kind on the entity actor shell (`crate::entity_actor`): one actor per token owns
//! its state and handles one request at a time, so claims and confirms of a token are
//! serialised without any database lock. Issuing a token goes through its actor too: the
//! engine starts the actor of a fresh uuid without a load, and the actor commits the new token.
//!
//! A command is decided by the pure domain, written through the group-committing writer, and
//! answered only after the commit. A fenced write (another node moved the token on) reloads
//! and decides again; a failed write restarts the actor under its supervisor, which reloads
//! the snapshot.
//!
//! Another node may also have moved the token on without this actor writing anything: a
//! refusal that depends on the token's state (not OPEN, not LOCKED, locked by another device,
//! not found for this caller) is therefore checked against the stored version before it is
//! answered, and decided again on the newer snapshot if there is one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::Value;
use uuid::Uuid;

use crate::clock::now_millis;
use crate::context::EntityContext;
use crate::domain::token::{
    ConfirmState, Issue, Token, TokenCommand, TokenRejection, TokenState, TokenType, Transition,
};
use crate::domain::Entity;
use crate::entity_actor::{after_failed_write, After, Kind, Settled};
use crate::metrics as m;
use crate::outcome::{rejection_reason, EngineError, Rejection};
use crate::store::{ClearingWrite, IdempotencyKey, IdempotencyRecord, StoreError, TokenWrite, WriteOutcome, WriteSet};

/// Decide-and-write rounds after a version-fence conflict before giving up.
const FENCE_ATTEMPTS: usize = 3;

/// What a frontend asks of a token.
#[derive(Debug, Clone)]
pub enum TokenRequest {
    /// Issue a new token under the uuid of `issue`. Answered `TokenNotCreated` when the uuid or
    /// the plain code is taken (the engine draws again) or the idempotency key was taken
    /// meanwhile (the engine answers what it created).
    Issue {
        issue: Issue,
        idempotency: Option<IdempotencyKey>,
        /// Whether the actor stays in memory with the new token (the phone claims it soon) or
        /// leaves at once (a burst of issuing beyond the bound of actors in memory).
        keep: bool,
    },
    /// A change of an existing token.
    Change(TokenChange),
}

/// A change of an existing token; the actor turns it into a domain command.
#[derive(Debug, Clone)]
pub enum TokenChange {
    Claim {
        cash_device: Uuid,
        cash_customer: i64,
        code: Vec<u8>,
    },
    /// A claim through a trigger code; the engine verified the phone's signature.
    TriggerClaim {
        cash_device: Uuid,
        cash_customer: i64,
        code: Vec<u8>,
        signature_valid: bool,
    },
    Confirm {
        cash_device: Uuid,
        cash_customer: i64,
        state: Option<ConfirmState>,
        amount: Option<i64>,
        lockrefname: Option<String>,
        processing_info: Option<Value>,
        partial_cashouts: bool,
    },
    Update {
        caller: i64,
        clearstate: Option<i64>,
        info: Option<Value>,
    },
    Delete {
        caller: i64,
        device: Uuid,
    },
    /// Active expiry: an OPEN token past `expires` becomes EXPIRED (`NotOpen` otherwise).
    Expire,
}

impl TokenChange {
    fn name(&self) -> &'static str {
        match self {
            Self::Claim { .. } => "claim",
            Self::TriggerClaim { .. } => "trigger_claim",
            Self::Confirm { .. } => "confirm",
            Self::Update { .. } => "update",
            Self::Delete { .. } => "delete",
            Self::Expire => "expire",
        }
    }
}

pub struct TokenKind;

impl Kind for TokenKind {
    type Entity = Token;
    type State = Token;
    type Request = TokenRequest;
    /// The token as committed after the request.
    type Reply = Token;

    const MAILBOX_CAPACITY: usize = 256;
    const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(15);
    /// A token in a final state changes rarely (an owner's update, a retention delete), so its
    /// actor leaves memory this soon after its last request instead of after `IDLE_TIMEOUT`:
    /// the actors in memory are then mostly the tokens in use (OPEN or LOCKED).
    const FINAL_LINGER: Duration = Duration::from_secs(2);

    fn load(context: Arc<EntityContext>, id: Uuid) -> BoxFuture<'static, Result<Option<Token>, StoreError>> {
        async move { context.store.load_token(id).await }.boxed()
    }

    fn is_final(token: &Token) -> bool {
        token.is_final()
    }

    fn handle(
        context: Arc<EntityContext>,
        id: Uuid,
        known: Option<Token>,
        request: TokenRequest,
        deadline: Instant,
    ) -> BoxFuture<'static, Settled<Self>> {
        match request {
            TokenRequest::Issue { issue, idempotency, keep } => {
                issue_token(context, known, issue, idempotency, keep, deadline).boxed()
            }
            TokenRequest::Change(change) => decide_and_commit(context, id, known, change, deadline).boxed(),
        }
    }
}

fn refused(rejection: TokenRejection) -> EngineError {
    let rejection = Rejection::Token(rejection);
    m::record_rejection(rejection_reason(&rejection));
    EngineError::Rejected(rejection)
}

/// A newly issued token as its idempotency key's result: everything its creator was answered,
/// secure code included, but not the keyed hash of the code.
fn issued_result(token: &Token) -> Result<String, EngineError> {
    let answered = Token { code_hash: None, ..token.clone() };
    serde_json::to_string(&answered).map_err(|error| EngineError::Internal(format!("encoding a token: {error}")))
}

async fn issue_token(
    context: Arc<EntityContext>,
    known: Option<Token>,
    issue: Issue,
    idempotency: Option<IdempotencyKey>,
    keep: bool,
    deadline: Instant,
) -> Settled<TokenKind> {
    if let Some(token) = known {
        // The uuid is taken (absurd for a fresh v4 uuid, but then the engine draws again).
        return (After::Keep(token), Err(Rejection::TokenNotCreated.into()));
    }
    let transition = match Token::create(issue, now_millis()) {
        Ok(transition) => transition,
        Err(rejection) => return (After::Missing, Err(refused(rejection))),
    };
    let token = transition.token;
    let idempotency = match idempotency {
        Some(key) => match issued_result(&token) {
            Ok(result) => Some(IdempotencyRecord { key, result }),
            Err(error) => return (After::Missing, Err(error)),
        },
        None => None,
    };
    let set = WriteSet {
        writes: vec![TokenWrite::Insert(token.clone())],
        events: transition.events,
        clearing: None,
        idempotency,
        ..WriteSet::default()
    };
    match context.writer.commit(set, deadline).await {
        Ok(WriteOutcome::Committed) => {
            m::record_transition("NONE", token.state.as_str());
            (if keep { After::Keep(token.clone()) } else { After::Leave }, Ok(token))
        }
        // A plain code (or, absurdly, the uuid) already in use, or the key taken meanwhile.
        Ok(WriteOutcome::Conflict) => (After::Missing, Err(Rejection::TokenNotCreated.into())),
        Ok(WriteOutcome::Refused) => (After::Missing, Err(EngineError::Internal("token write refused".into()))),
        Err(error) => {
            let (after, answer) = after_failed_write(error, After::Missing);
            (after, Err(answer))
        }
    }
}

fn to_command(shared: &EntityContext, token: &Token, change: &TokenChange) -> TokenCommand {
    match change {
        TokenChange::Claim { cash_device, cash_customer, code } => TokenCommand::Claim {
            cash_device: *cash_device,
            cash_customer: *cash_customer,
            code_matches: token.code_hash.as_deref().is_some_and(|stored| shared.hasher.code_matches(code, stored)),
        },
        TokenChange::TriggerClaim { cash_device, cash_customer, code, signature_valid } => TokenCommand::TriggerClaim {
            cash_device: *cash_device,
            cash_customer: *cash_customer,
            signature_valid: *signature_valid,
            code_matches: token.code_hash.as_deref().is_some_and(|stored| shared.hasher.code_matches(code, stored)),
        },
        TokenChange::Confirm {
            cash_device,
            cash_customer,
            state,
            amount,
            lockrefname,
            processing_info,
            partial_cashouts,
        } => TokenCommand::Confirm {
            cash_device: *cash_device,
            cash_customer: *cash_customer,
            state: *state,
            amount: *amount,
            lockrefname: lockrefname.clone(),
            processing_info: processing_info.clone(),
            remainder: partial_cashouts.then(Uuid::new_v4),
        },
        TokenChange::Update { caller, clearstate, info } => {
            TokenCommand::Update { caller: *caller, clearstate: *clearstate, info: info.clone() }
        }
        TokenChange::Delete { caller, device } => TokenCommand::Delete { caller: *caller, device: *device },
        TokenChange::Expire => TokenCommand::Expire,
    }
}

fn write_set(transition: &Transition) -> WriteSet {
    let mut writes = vec![TokenWrite::Update(transition.token.clone())];
    writes.extend(transition.spawned.clone().map(TokenWrite::Insert));
    let clearing = transition.clearing.map(|clearing| ClearingWrite {
        token: transition.token.uuid,
        debitor_id: clearing.debitor,
        creditor_id: clearing.creditor,
        created: clearing.at,
    });
    WriteSet { writes, events: transition.events.clone(), clearing, idempotency: None, ..WriteSet::default() }
}

/// Whether a refusal of a command on `token` could be wrong because another node changed the
/// token since this actor read it. Only OPEN and LOCKED tokens move on (a final state is
/// final), and only refusals that look at the state, the lock or the owner's rights can go
/// stale; a refusal of the request's own values cannot.
fn may_be_stale(token: &Token, rejection: TokenRejection) -> bool {
    let depends_on_state = match rejection {
        TokenRejection::NotFound
        | TokenRejection::NotOpen
        | TokenRejection::NotLocked
        | TokenRejection::LockedByAnotherDevice
        | TokenRejection::IllegalAmountIncrease => true,
        TokenRejection::InvalidCode
        | TokenRejection::InvalidSignature
        | TokenRejection::InvalidConfirmState
        | TokenRejection::AmountOutOfRange
        | TokenRejection::ExpiresOutOfRange
        | TokenRejection::NothingToUpdate => false,
    };
    depends_on_state && !token.state.is_final()
}

async fn decide_and_commit(
    shared: Arc<EntityContext>,
    id: Uuid,
    known: Option<Token>,
    change: TokenChange,
    deadline: Instant,
) -> Settled<TokenKind> {
    let mut token = match known {
        Some(token) => token,
        None => match shared.store.load_token(id).await {
            Ok(Some(token)) => token,
            Ok(None) => return (After::Missing, Err(Rejection::UnknownToken.into())),
            Err(error) => {
                tracing::warn!(token = %id, %error, "token snapshot could not be loaded");
                return (After::Missing, Err(EngineError::Unavailable));
            }
        },
    };
    for _ in 0..FENCE_ATTEMPTS {
        let command = to_command(&shared, &token, &change);
        let transition = match token.apply(&command, now_millis()) {
            Ok(transition) => transition,
            Err(rejection) if may_be_stale(&token, rejection) => {
                // Answer only what the stored version says: reload, and decide again if it moved.
                match shared.store.load_token(token.uuid).await {
                    Ok(Some(current)) if current.version != token.version => {
                        tracing::info!(token = %token.uuid, request = change.name(), "stale snapshot: deciding again");
                        token = current;
                        continue;
                    }
                    Ok(Some(_)) => return (After::Keep(token), Err(refused(rejection))),
                    Ok(None) => return (After::Missing, Err(Rejection::UnknownToken.into())),
                    Err(error) => {
                        tracing::warn!(token = %token.uuid, %error, "could not check a refusal against the store");
                        return (After::Keep(token), Err(EngineError::Unavailable));
                    }
                }
            }
            Err(rejection) => return (After::Keep(token), Err(refused(rejection))),
        };
        match shared.writer.commit(write_set(&transition), deadline).await {
            Ok(WriteOutcome::Committed) => {
                for event in &transition.events {
                    // Owner updates keep the state: events, but no state transition.
                    if event.from != Some(event.to) {
                        m::record_transition(event.from.map_or("NONE", |state| state.as_str()), event.to.as_str());
                    }
                }
                let confirmed = &transition.token;
                if confirmed.state == TokenState::Completed && confirmed.token_type == TokenType::Cashout {
                    m::record_cashout(&shared.currencies, &confirmed.symbol, confirmed.amount);
                }
                if transition.clearing.is_some() {
                    m::record_clearing(confirmed.token_type.as_str());
                }
                let answer = transition.answer.map(|()| transition.token.clone()).map_err(refused);
                return (After::Keep(transition.token), answer);
            }
            Ok(WriteOutcome::Conflict) => {
                m::record_fence_conflict();
                tracing::info!(token = %token.uuid, request = change.name(), "version fence: reloading");
                match shared.store.load_token(token.uuid).await {
                    Ok(Some(current)) => token = current,
                    Ok(None) => return (After::Missing, Err(Rejection::UnknownToken.into())),
                    Err(error) => {
                        tracing::warn!(token = %token.uuid, %error, "reload after fence failed");
                        return (After::Reload, Err(EngineError::Unavailable));
                    }
                }
            }
            Ok(WriteOutcome::Refused) => {
                return (After::Reload, Err(EngineError::Internal("token write failed".into())))
            }
            Err(error) => {
                let (after, answer) = after_failed_write(error, After::Keep(token));
                return (after, Err(answer));
            }
        }
    }
    (After::Reload, Err(EngineError::Internal("version fence kept failing".into())))
}
