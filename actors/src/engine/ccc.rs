//! The Crypto Capital account API's users on the engine: their profiles (`domain::ccc`, one
//! actor per Bitcoin address on the generic shell) and their money, kept in ledger accounts
//! the address owns, one per currency.

use std::sync::Arc;
use std::time::Duration;

use super::{EngineError, LedgerService};
use crate::crypto::bitcoin_message::{Address, MessageKey};
use crate::domain::ccc::{CccUser, InfoChanges, Registration, UserCommand, UserRejection};
use crate::domain::ledger::{Account, Currency, Owner, OwnerKind};
use crate::domain::Entity;
use crate::entity_actor::{Registry, Start};
use crate::stored_kind::{Refusal, Stored, StoredRequest};

/// Most currency accounts one user's balance lists.
const ACCOUNTS_MAX: usize = 100;

pub type UserRegistry = Arc<Registry<Stored<CccUser>>>;

/// What a registration or a change of a profile came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileAnswer {
    Done(Box<CccUser>),
    Refused(UserRejection),
    /// `register` of an address that has registered.
    AlreadyRegistered,
    /// A change of an address that has not registered.
    NotRegistered,
}

/// One of a user's currency balances: what it may spend (posted, less what is on hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBalance {
    pub currency: Currency,
    pub minor: i128,
    pub decimals: u8,
}

#[derive(Clone)]
pub struct CccService {
    users: UserRegistry,
    ledger: LedgerService,
    /// Signs what the server sends about the ledger (derived from the server key).
    message_key: Arc<MessageKey>,
    send_timeout: Duration,
}

impl CccService {
    pub fn new(users: UserRegistry, ledger: LedgerService, send_timeout: Duration) -> Self {
        let message_key = Arc::new(users.context().hasher.message_key());
        Self { users, ledger, message_key, send_timeout }
    }

    /// The address whose key signs the server's messages.
    pub fn server_address(&self) -> &Address {
        self.message_key.address()
    }

    /// A Bitcoin message signature of `data` by the server's key, base64.
    pub fn sign(&self, data: &str) -> Result<String, EngineError> {
        self.message_key.sign(data.as_bytes()).map_err(|error| EngineError::Internal(format!("signing: {error}")))
    }

    /// The user registered under `address`, as committed.
    pub async fn user(&self, address: &str) -> Result<Option<CccUser>, EngineError> {
        let store = &self.users.context().store;
        let Some(stored) = store.load_entity(CccUser::KIND, address).await? else {
            return Ok(None);
        };
        serde_json::from_value(stored.state)
            .map(Some)
            .map_err(|error| EngineError::Internal(format!("corrupt {} {address}: {error}", CccUser::KIND)))
    }

    pub async fn register(&self, registration: Registration) -> Result<ProfileAnswer, EngineError> {
        if !self.knows_currency(&registration.profile.currency) {
            return Ok(ProfileAnswer::Refused(UserRejection::Currency));
        }
        let address = registration.address.clone();
        let request = StoredRequest::Create(registration);
        Ok(match self.users.ask(address, request, Start::Absent, self.send_timeout).await? {
            Ok(user) => ProfileAnswer::Done(Box::new(user)),
            Err(Refusal::Exists) => ProfileAnswer::AlreadyRegistered,
            Err(Refusal::Rejected(rejection)) => ProfileAnswer::Refused(rejection),
            Err(Refusal::Unknown) => ProfileAnswer::NotRegistered,
        })
    }

    pub async fn set_info(&self, address: &str, changes: InfoChanges) -> Result<ProfileAnswer, EngineError> {
        if changes.currency.as_deref().is_some_and(|code| !self.knows_currency(code)) {
            return Ok(ProfileAnswer::Refused(UserRejection::Currency));
        }
        self.command(address, UserCommand::SetInfo(changes)).await
    }

    async fn command(&self, address: &str, command: UserCommand) -> Result<ProfileAnswer, EngineError> {
        let request = StoredRequest::Command(command);
        Ok(match self.users.ask(address.to_owned(), request, Start::Load, self.send_timeout).await? {
            Ok(user) => ProfileAnswer::Done(Box::new(user)),
            Err(Refusal::Unknown) => ProfileAnswer::NotRegistered,
            Err(Refusal::Rejected(rejection)) => ProfileAnswer::Refused(rejection),
            Err(Refusal::Exists) => ProfileAnswer::AlreadyRegistered,
        })
    }

    /// Whether the ledger's currency table has `code`.
    pub fn knows_currency(&self, code: &str) -> bool {
        self.decimals(code).is_some()
    }

    /// The decimal places of a currency of the ledger's table.
    pub fn decimals(&self, code: &str) -> Option<u8> {
        Currency::new(code).and_then(|currency| self.ledger.currencies().decimals(&currency))
    }

    /// The balances of the address's accounts, by currency code.
    pub async fn balances(&self, address: &str) -> Result<Vec<UserBalance>, EngineError> {
        let owner = Owner { kind: OwnerKind::BitcoinAddress, id: address.to_owned() };
        let accounts = self.ledger.accounts_of_owner(&owner, None, ACCOUNTS_MAX).await?;
        let mut balances: Vec<UserBalance> = accounts.iter().filter_map(|account| self.balance(account)).collect();
        balances.sort_by(|one, other| one.currency.code().cmp(other.currency.code()));
        Ok(balances)
    }

    fn balance(&self, account: &Account) -> Option<UserBalance> {
        let decimals = self.ledger.currencies().decimals(&account.currency)?;
        let sums = &account.balances;
        let minor = sums.net_posted() - sums.debits_pending as i128;
        Some(UserBalance { currency: account.currency.clone(), minor, decimals })
    }
}
