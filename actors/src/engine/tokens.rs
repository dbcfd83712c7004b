//! Tokens: issue, claim, confirm, owner changes and reads. Every change is a request to the
//! token's actor (`crate::token_actor`); reads of committed tokens go to the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::access::AccessService;
use super::devices::DeviceService;
use super::idempotency::{Begin, Idempotency};
use super::{EngineError, Rejection};
use crate::crypto::{encrypt_code, new_secure_code, random_digits};
use crate::domain::params::{self, is_on};
use crate::domain::radiocode::{Radiocode, RadiocodeError};
use crate::domain::token::{ConfirmState, Issue, Token, TokenRejection, TokenType};
use crate::domain::CustomerId;
use crate::entity_actor::Registry;
use crate::entity_actor::Start;
use crate::store::{TokenFilter, LIST_LIMIT_MAX};
use crate::token_actor::{TokenChange, TokenKind, TokenRequest};

/// Attempts at issuing a token with fresh codes before giving up, as the original does.
const ISSUE_ATTEMPTS: usize = 10;
/// Token actors in memory beyond which the actor of a newly issued token leaves memory at once
/// (it loads again on its first claim).
const SEEDED_TOKEN_ACTORS_MAX: usize = 50_000;

/// A bank's request to issue a token, validated by the frontend.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewToken {
    pub device: Uuid,
    pub token_type: TokenType,
    pub amount: i64,
    pub symbol: String,
    pub expires: Option<i64>,
    pub refname: Option<String>,
    pub clearstate: i64,
    pub info: Option<Value>,
}

/// A cash device's confirmation, validated by the frontend.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    /// `None` when the requested state is not one of the five final states.
    pub state: Option<ConfirmState>,
    pub amount: Option<i64>,
    pub lockrefname: Option<String>,
    pub processing_info: Option<Value>,
}

#[derive(Clone)]
pub struct TokenService {
    registry: Arc<Registry<TokenKind>>,
    devices: DeviceService,
    access: AccessService,
    idempotency: Idempotency,
    send_timeout: Duration,
}

impl TokenService {
    pub(super) fn new(
        registry: Arc<Registry<TokenKind>>,
        devices: DeviceService,
        access: AccessService,
        idempotency: Idempotency,
        send_timeout: Duration,
    ) -> Self {
        Self { registry, devices, access, idempotency, send_timeout }
    }

    /// Issue a token for one of the customer's phones; answers once it is committed. With an
    /// idempotency key, a retry answers the token first issued under it, secure code included.
    pub async fn create(
        &self,
        customer: CustomerId,
        new: NewToken,
        idempotency: Option<&str>,
    ) -> Result<Token, EngineError> {
        let keyed = match self.idempotency.begin(customer, idempotency, "token", &new).await? {
            Begin::Replay(token) => return Ok(token),
            Begin::Fresh(keyed) => Some(keyed),
            Begin::Unkeyed => None,
        };
        let key = keyed.as_ref().map(|keyed| &keyed.key);
        let device = self.devices.owned(customer, new.device).await?;
        let key_of_device = device.key.as_ref().map_err(|error| Rejection::BadPublicKey(error.clone()))?;
        let plain = is_on(self.access.param(customer, params::USE_PLAIN_CODES).await?.as_ref());
        let hasher = &self.registry.context().hasher;
        let deadline = Instant::now() + self.send_timeout;
        for _ in 0..ISSUE_ATTEMPTS {
            let uuid = Uuid::new_v4();
            let code = new_secure_code(plain);
            let secure_code = encrypt_code(key_of_device, &code).map_err(Rejection::BadPublicKey)?;
            let issue = Issue {
                uuid,
                owner_id: customer,
                owner_device: new.device,
                token_type: new.token_type,
                amount: new.amount,
                symbol: new.symbol.clone(),
                expires: new.expires,
                refname: new.refname.clone(),
                clearstate: new.clearstate,
                info: new.info.clone(),
                plain_code: plain.then(random_digits),
                secure_code,
                code_hash: hasher.code_hash(uuid, &code),
            };
            // The phone claims it soon (at the ATM, often within seconds): its actor stays with
            // the committed snapshot instead of reading it back then. Each costs about 2 kB
            // until it passivates, so beyond a bound the actor leaves at once and the token
            // loads on its first claim, as any other.
            let keep = self.registry.len() < SEEDED_TOKEN_ACTORS_MAX;
            let request = TokenRequest::Issue { issue, idempotency: key.cloned(), keep };
            let left = deadline.saturating_duration_since(Instant::now());
            match self.registry.ask(uuid, request, Start::Absent, left).await {
                // A plain code (or, absurdly, a uuid) already in use: draw again. Or the key
                // was taken meanwhile (another node): answer what it created.
                Err(EngineError::Rejected(Rejection::TokenNotCreated)) => {
                    if let Some(key) = key {
                        if let Some(token) = self.idempotency.replay(key).await? {
                            return Ok(token);
                        }
                    }
                }
                answer => return answer,
            }
        }
        Err(Rejection::TokenNotCreated.into())
    }

    /// Verify and lock a token for a cash device of `cash_customer`.
    pub async fn claim(
        &self,
        cash_customer: CustomerId,
        cash_device: Uuid,
        radiocode: &str,
    ) -> Result<Token, EngineError> {
        self.devices.owned(cash_customer, cash_device).await?;
        let (token, code) = self.named_by(radiocode).await?;
        self.change(token, TokenChange::Claim { cash_device, cash_customer, code }).await
    }

    /// The token a radiocode names, and the code it presents.
    pub(super) async fn named_by(&self, radiocode: &str) -> Result<(Uuid, Vec<u8>), EngineError> {
        match Radiocode::parse(radiocode) {
            Ok(Radiocode::Long { token, code }) => Ok((token, code)),
            Ok(Radiocode::Short { plain_code, code }) => {
                match self.registry.context().store.find_token_by_plain_code(&plain_code).await? {
                    Some(token) => Ok((token, code)),
                    None => Err(Rejection::UnknownToken.into()),
                }
            }
            Err(RadiocodeError::Empty) => Err(Rejection::IllegalRadiocode.into()),
            Err(RadiocodeError::UnknownToken(_)) => Err(Rejection::UnknownToken.into()),
        }
    }

    /// Finish a token that `cash_device` locked.
    pub async fn confirm(
        &self,
        cash_customer: CustomerId,
        cash_device: Uuid,
        token: Uuid,
        confirmation: Confirmation,
    ) -> Result<Token, EngineError> {
        let partial_cashouts = is_on(self.access.param(cash_customer, params::PARTIAL_CASHOUTS).await?.as_ref());
        self.devices.owned(cash_customer, cash_device).await?;
        let change = TokenChange::Confirm {
            cash_device,
            cash_customer,
            state: confirmation.state,
            amount: confirmation.amount,
            lockrefname: confirmation.lockrefname,
            processing_info: confirmation.processing_info,
            partial_cashouts,
        };
        self.change(token, change).await
    }

    pub async fn update(
        &self,
        owner: CustomerId,
        token: Uuid,
        clearstate: Option<i64>,
        info: Option<Value>,
    ) -> Result<Token, EngineError> {
        let change = TokenChange::Update { caller: owner, clearstate, info };
        self.change(token, change).await.map_err(unknown_token_is_not_found)
    }

    pub async fn delete(&self, owner: CustomerId, token: Uuid, device: Uuid) -> Result<Token, EngineError> {
        let change = TokenChange::Delete { caller: owner, device };
        self.change(token, change).await.map_err(unknown_token_is_not_found)
    }

    /// Expire a token whose `expires` has passed (`NotOpen` when it is not OPEN and due).
    pub async fn expire(&self, token: Uuid) -> Result<Token, EngineError> {
        self.change(token, TokenChange::Expire).await
    }

    /// A committed token of `owner`, read from the store.
    pub async fn find(&self, owner: CustomerId, token: Uuid) -> Result<Option<Token>, EngineError> {
        Ok(self.load(token).await?.filter(|token| token.owner_id == owner))
    }

    /// Any committed token, read from the store.
    pub(super) async fn load(&self, token: Uuid) -> Result<Option<Token>, EngineError> {
        Ok(self.registry.context().store.load_token(token).await?)
    }

    pub async fn list(&self, owner: CustomerId, filter: &TokenFilter) -> Result<Vec<Token>, EngineError> {
        Ok(self.registry.context().store.list_tokens(owner, filter, LIST_LIMIT_MAX).await?)
    }

    /// Ask a token's actor for a change (see `Registry::ask`).
    pub(super) async fn change(&self, token: Uuid, change: TokenChange) -> Result<Token, EngineError> {
        self.registry.ask(token, TokenRequest::Change(change), Start::Load, self.send_timeout).await
    }
}

fn unknown_token_is_not_found(error: EngineError) -> EngineError {
    match error {
        EngineError::Rejected(Rejection::UnknownToken) => {
            EngineError::Rejected(Rejection::Token(TokenRejection::NotFound))
        }
        other => other,
    }
}
