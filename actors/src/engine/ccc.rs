//! The Crypto Capital account API's users on the engine: their profiles (`domain::ccc`, one
//! actor per Bitcoin address on the generic shell) and their money, kept in ledger accounts
//! the address owns, one per currency.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::customers::Customers;
use super::ledger::Opened;
use super::{EngineError, FeedService, LedgerService};
use crate::crypto::bitcoin_message::{Address, MessageKey};
use crate::domain::ccc::{CccUser, InfoChanges, Registration, UserCommand, UserRejection};
use crate::domain::ledger::{
    Account, AccountFlags, AccountId, AccountKind, Amount, Currency, Memo, NewAccount, Owner, OwnerKind, PendingState,
    Reach, Transfer, TransferId, TransferKind, TransferRequest, TransferResult,
};
use crate::domain::{CustomerId, Entity, Millis};
use crate::entity_actor::{Registry, Start};
use crate::feed_hub::{Audience, FeedSpec, LedgerEntries, Subscription};
use crate::store::{EntryRange, LedgerEntry, NewCustomer};
use crate::stored_kind::{Refusal, Stored, StoredRequest};

/// How many unchanging facts (registered addresses, accounts' owners) a node keeps, and for
/// how long.
const FACTS_MAX: u64 = 100_000;
const FACTS_TTL: Duration = Duration::from_secs(3600);
/// How long a transfer this node made is kept for its notifications.
const RECENT_TTL: Duration = Duration::from_secs(60);
/// Signatures kept for texts signed again, and the longest text kept.
const SIGNATURES_MAX: u64 = 10_000;
const SIGNED_TEXT_MAX: usize = 1_024;

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

/// The API's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CccConfig {
    /// How long a payout to an IBAN may wait for the bank before it fails ("timed out").
    pub payout_timeout: Duration,
    /// Where users' IBANs come from: ISO 3166 country and the bank code of its BBAN.
    pub iban_country: String,
    pub iban_bank_code: String,
}

impl Default for CccConfig {
    fn default() -> Self {
        Self {
            payout_timeout: Duration::from_secs(24 * 3600),
            iban_country: "DE".to_owned(),
            iban_bank_code: "37040044".to_owned(),
        }
    }
}

#[derive(Clone)]
pub struct CccService {
    config: Arc<CccConfig>,
    users: UserRegistry,
    ledger: LedgerService,
    customers: Arc<Customers>,
    feeds: FeedService,
    /// The customer keeping the API's accounts, once found or created.
    operator: Arc<OnceCell<CustomerId>>,
    /// Signs what the server sends about the ledger (derived from the server key).
    message_key: Arc<MessageKey>,
    /// Facts that never change once true, so every node may keep them: an address has
    /// registered; an account of the API's exists (and who owns it).
    registered: moka::sync::Cache<String, ()>,
    owners: moka::sync::Cache<AccountId, Option<String>>,
    /// Transfers this node made lately: their journal lines' notifications need not read them.
    recent: moka::sync::Cache<TransferId, Arc<Transfer>>,
    /// Texts signed lately, with their signatures.
    signatures: moka::sync::Cache<String, String>,
    send_timeout: Duration,
}

impl CccService {
    pub fn new(
        config: CccConfig,
        users: UserRegistry,
        ledger: LedgerService,
        customers: Arc<Customers>,
        feeds: FeedService,
        send_timeout: Duration,
    ) -> Self {
        let message_key = Arc::new(users.context().hasher.message_key());
        let config = Arc::new(config);
        Self {
            config,
            users,
            ledger,
            customers,
            feeds,
            operator: Arc::default(),
            message_key,
            registered: super::bounded_cache(FACTS_TTL, FACTS_MAX),
            owners: super::bounded_cache(FACTS_TTL, FACTS_MAX),
            recent: super::bounded_cache(RECENT_TTL, FACTS_MAX),
            signatures: super::bounded_cache(RECENT_TTL, SIGNATURES_MAX),
            send_timeout,
        }
    }

    /// The address whose key signs the server's messages.
    pub fn server_address(&self) -> &Address {
        self.message_key.address()
    }

    /// A Bitcoin message signature of `data` by the server's key, base64.
    /// Signing is deterministic (RFC 6979), so a text signed lately (a transfer's reply, then
    /// the recipient's copy of the same data) takes the signature made then.
    pub fn sign(&self, data: &str) -> Result<String, EngineError> {
        if let Some(signature) = self.signatures.get(data) {
            return Ok(signature);
        }
        let signature = self
            .message_key
            .sign(data.as_bytes())
            .map_err(|error| EngineError::Internal(format!("signing: {error}")))?;
        if data.len() <= SIGNED_TEXT_MAX {
            self.signatures.insert(data.to_owned(), signature.clone());
        }
        Ok(signature)
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

    /// Whether `address` has registered (once it has, for good).
    pub async fn is_registered(&self, address: &str) -> Result<bool, EngineError> {
        if self.registered.contains_key(address) {
            return Ok(true);
        }
        let registered = self.user(address).await?.is_some();
        if registered {
            self.registered.insert(address.to_owned(), ());
        }
        Ok(registered)
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
        Ok(self.balances_of(&self.accounts(address).await?))
    }

    /// The address's accounts as committed.
    pub async fn accounts(&self, address: &str) -> Result<Vec<Account>, EngineError> {
        let owner = Owner { kind: OwnerKind::BitcoinAddress, id: address.to_owned() };
        self.ledger.accounts_of_owner(&owner, None, ACCOUNTS_MAX).await
    }

    /// The balances of accounts, by currency code.
    pub fn balances_of(&self, accounts: &[Account]) -> Vec<UserBalance> {
        let mut balances: Vec<UserBalance> = accounts.iter().filter_map(|account| self.balance(account)).collect();
        balances.sort_by(|one, other| one.currency.code().cmp(other.currency.code()));
        balances
    }

    fn balance(&self, account: &Account) -> Option<UserBalance> {
        let decimals = self.ledger.currencies().decimals(&account.currency)?;
        let sums = &account.balances;
        let minor = sums.net_posted() - sums.debits_pending as i128;
        Some(UserBalance { currency: account.currency.clone(), minor, decimals })
    }
}

/// The subscriber label of the notifications (`cashgrid_feed_*` metrics).
pub const FEED_LABEL: &str = "ccc";

/// The cashgrid customer that keeps the accounts of the API's users and its bank rails,
/// created on first use (each node finds the one the first created).
pub const OPERATOR_EMAIL: &str = "ccc-operator@cashgrid.invalid";
/// Transfers one `history` replays at most.
pub const HISTORY_MAX: usize = 1_000;
/// Memo codes of the API's transfers.
const CODE_DEPOSIT: u16 = 1;
const CODE_INTERNAL: u16 = 2;
const CODE_PAYOUT: u16 = 3;
/// IBANs tried for one user before verifying gives up (another user may hold one).
const IBAN_ATTEMPTS: u32 = 8;

/// A bank payment in to a user's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    pub address: String,
    pub currency: String,
    /// Minor units.
    pub amount: u64,
    pub from_iban: String,
    /// The bank's reference: a payment booked under it is never booked twice.
    pub reference: Option<String>,
}

/// How a deposit or a transfer went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    Booked(Box<Transfer>),
    /// The same deposit (by its bank reference) was booked before.
    AlreadyBooked(Box<Transfer>),
    /// Refused, with the `error` message's text.
    Refused(&'static str),
    /// What it names (a recipient, a payout) does not exist: the text says which.
    NotFound(&'static str),
}

/// Where a payout to an IBAN stands (the D1 `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutStatus {
    /// Held on the sender's account, on its way to the bank.
    Pending,
    /// Paid out: the hold was posted to the bank rail.
    Complete,
    /// Not paid: the hold was released, for this reason.
    Failed(String),
}

/// One step of a user's transfer as the API shows it: who sent it and where it went
/// (addresses, or the IBAN of a bank payment), and for a payout to an IBAN where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTransfer {
    /// The transfer's id: for every step of a payout, its hold's.
    pub txid: TransferId,
    /// When the transfer was made, and when this step happened.
    pub created: Millis,
    pub updated: Millis,
    pub currency: Currency,
    pub amount: Amount,
    pub decimals: u8,
    pub sender: String,
    pub destination: String,
    /// Only on payouts to an IBAN.
    pub status: Option<PayoutStatus>,
}

/// The reason a payout's hold records when its time-out released it.
pub const TIMED_OUT: &str = "timed out";

/// Which of a user's transfers `history` replays (the fact sheet's three options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryQuery {
    /// Only the N most recent.
    pub limit: Option<usize>,
    /// This transfer and every later one.
    pub since_transaction: Option<TransferId>,
    /// From this time (ms) on.
    pub since_time: Option<Millis>,
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize().into()
}

/// A uuid derived from its parts: the same parts always name the same account or transfer, so
/// opening it again, or booking a payment again, finds the one there is.
fn derived_uuid(parts: &[&str]) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest(parts)[..16]);
    Uuid::new_v8(bytes)
}

/// Bytes of a user's account id that depend on its address alone: the notifications' first
/// sieve over the journal (a line whose account has them may be the user's; the transfer's
/// parties decide).
const OWNER_PREFIX_BYTES: usize = 6;

fn owner_prefix(address: &str) -> [u8; OWNER_PREFIX_BYTES] {
    let mut prefix = [0u8; OWNER_PREFIX_BYTES];
    prefix.copy_from_slice(&digest(&["cashgrid ccc owner", address])[..OWNER_PREFIX_BYTES]);
    prefix
}

/// The account of `address` in `currency`: its first bytes are the address's prefix.
pub fn user_account(address: &str, currency: &str) -> AccountId {
    let mut bytes = [0u8; 16];
    bytes[..OWNER_PREFIX_BYTES].copy_from_slice(&owner_prefix(address));
    bytes[OWNER_PREFIX_BYTES..].copy_from_slice(&digest(&["cashgrid ccc account", address, currency])[..10]);
    AccountId(Uuid::new_v8(bytes))
}

/// Whether a journal line's account may be one of the address whose prefix this is (see
/// [`OWNER_PREFIX_BYTES`]).
fn may_be_users(prefix: &[u8; OWNER_PREFIX_BYTES], account: AccountId) -> bool {
    account.0.as_bytes()[..OWNER_PREFIX_BYTES] == prefix[..]
}

/// The bank rail of `currency`: where deposits come from and IBAN payouts go.
pub fn rail_account(currency: &str) -> AccountId {
    AccountId(derived_uuid(&["cashgrid ccc rail", currency]))
}

/// The metadata fields of a transfer naming the IBAN it came from or goes to.
const FROM_IBAN: &str = "from_iban";
const TO_IBAN: &str = "to_iban";

/// The IBAN a user is given: the country's check digits over the bank code and an account
/// number derived from the address (and the attempt, past a taken one); `None` when the
/// country and bank code make no valid IBAN of any account-number length.
pub fn assign_iban(country: &str, bank_code: &str, address: &str, attempt: u32) -> Option<String> {
    let seed = digest(&["cashgrid ccc iban", address, &attempt.to_string()]);
    let digits: String = seed.iter().map(|byte| char::from(b'0' + byte % 10)).collect();
    (1..=digits.len()).find_map(|length| {
        let bban = format!("{bank_code}{}", &digits[..length]);
        let check = 98 - mod97(&format!("{bban}{country}00"))?;
        crate::domain::ccc::parse_iban(&format!("{country}{check:02}{bban}"))
    })
}

/// The remainder mod 97 of an IBAN's letters-as-numbers form (ISO 13616); `None` for a
/// character that is not a letter or digit.
fn mod97(text: &str) -> Option<u32> {
    text.chars().try_fold(0u32, |remainder, c| {
        let value = c.to_digit(36)?;
        Some(if value < 10 { (remainder * 10 + value) % 97 } else { (remainder * 100 + value) % 97 })
    })
}

impl CccService {
    /// The customer keeping the API's accounts.
    async fn operator(&self) -> Result<CustomerId, EngineError> {
        let found = self
            .operator
            .get_or_try_init(|| async {
                if let Some(customer) = self.customers.customer_by_email(OPERATOR_EMAIL).await? {
                    return Ok(customer.id);
                }
                let new = NewCustomer {
                    email: OPERATOR_EMAIL.to_owned(),
                    display_name: Some("Crypto Capital API".to_owned()),
                    roles: "user".to_owned(),
                };
                match self.customers.create_customer(&new).await {
                    Ok(customer) => Ok(customer.id),
                    // Created by another node meanwhile.
                    Err(_) => {
                        self.customers.customer_by_email(OPERATOR_EMAIL).await?.map(|customer| customer.id).ok_or_else(
                            || EngineError::Internal("the ccc operator customer could not be created".into()),
                        )
                    }
                }
            })
            .await?;
        Ok(*found)
    }

    /// Open an account of the API's (again: the same id finds the one there is), once per node:
    /// an account opened is remembered with its owner, which never changes.
    async fn ensure_account(
        &self,
        id: AccountId,
        owner: Owner,
        currency: &str,
        kind: AccountKind,
    ) -> Result<(), EngineError> {
        if self.owners.contains_key(&id) {
            return Ok(());
        }
        let address = (owner.kind == OwnerKind::BitcoinAddress).then(|| owner.id.clone());
        let currency = Currency::new(currency).ok_or_else(|| EngineError::Internal("not a currency code".into()))?;
        let flags = match kind {
            // A rail is the outside world: it goes below zero by what came in.
            AccountKind::ExternalRail => {
                AccountFlags { debits_must_not_exceed_credits: false, ..AccountFlags::default() }
            }
            _ => AccountFlags::default(),
        };
        let new = NewAccount { id, customer: self.operator().await?, owner, currency, kind, flags };
        match self.ledger.open(new).await? {
            Opened::Created(_) | Opened::Exists(_) => {
                self.owners.insert(id, address);
                Ok(())
            }
            other => Err(EngineError::Internal(format!("opening a ccc account: {other:?}"))),
        }
    }

    async fn ensure_user_account(&self, address: &str, currency: &str) -> Result<AccountId, EngineError> {
        let id = user_account(address, currency);
        let owner = Owner { kind: OwnerKind::BitcoinAddress, id: address.to_owned() };
        self.ensure_account(id, owner, currency, AccountKind::Customer).await?;
        Ok(id)
    }

    async fn ensure_rail(&self, currency: &str) -> Result<AccountId, EngineError> {
        let id = rail_account(currency);
        let owner = Owner { kind: OwnerKind::Customer, id: self.operator().await?.to_string() };
        self.ensure_account(id, owner, currency, AccountKind::ExternalRail).await?;
        Ok(id)
    }

    /// Book a bank payment to a registered user (the operator's call).
    pub async fn deposit(&self, deposit: Deposit) -> Result<Moved, EngineError> {
        if !self.is_registered(&deposit.address).await? {
            return Ok(Moved::NotFound("Unknown recipient: no registered user has this address"));
        }
        if !self.knows_currency(&deposit.currency) {
            return Ok(Moved::Refused("Unknown currency"));
        }
        let Some(amount) = Amount::new(deposit.amount) else {
            return Ok(Moved::Refused("Amount must be positive"));
        };
        let rail = self.ensure_rail(&deposit.currency).await?;
        let account = self.ensure_user_account(&deposit.address, &deposit.currency).await?;
        let id = match &deposit.reference {
            Some(reference) => TransferId(derived_uuid(&["cashgrid ccc deposit", reference])),
            None => TransferId(Uuid::new_v4()),
        };
        let memo = Memo {
            code: CODE_DEPOSIT,
            reference: deposit.reference.clone(),
            metadata: Some(serde_json::json!({ FROM_IBAN: deposit.from_iban })),
        };
        let request = TransferRequest::Post { id, debit: rail, credit: account, amount, memo };
        let outcome = self.ledger.transfer(request, Reach::Every).await?;
        Ok(match (outcome.result, outcome.transfer) {
            (TransferResult::Created, Some(transfer)) => self.booked(transfer),
            (TransferResult::Exists, Some(transfer)) => Moved::AlreadyBooked(Box::new(transfer)),
            (TransferResult::ExistsWithDifferentFields, _) => {
                Moved::Refused("Another payment was booked under this reference")
            }
            (result, _) => Moved::Refused(refusal_text(result)),
        })
    }

    /// Move money from one user to another at once, in one ledger transfer.
    pub async fn transfer_to_user(
        &self,
        sender: &str,
        recipient: &str,
        currency: &str,
        amount: Amount,
    ) -> Result<Moved, EngineError> {
        if sender == recipient {
            return Ok(Moved::Refused("Cannot transfer to yourself"));
        }
        if !self.is_registered(recipient).await? {
            return Ok(Moved::NotFound("Unknown recipient: no registered user has this address"));
        }
        let debit = self.ensure_user_account(sender, currency).await?;
        let credit = self.ensure_user_account(recipient, currency).await?;
        let memo = Memo { code: CODE_INTERNAL, reference: None, metadata: None };
        let request = TransferRequest::Post { id: TransferId(Uuid::new_v4()), debit, credit, amount, memo };
        let outcome = self.ledger.transfer(request, Reach::Every).await?;
        Ok(match (outcome.result, outcome.transfer) {
            (TransferResult::Created, Some(transfer)) => self.booked(transfer),
            (result, _) => Moved::Refused(refusal_text(result)),
        })
    }

    /// A transfer just made, remembered for the notifications of its lines.
    fn booked(&self, transfer: Transfer) -> Moved {
        self.recent.insert(transfer.id, Arc::new(transfer.clone()));
        Moved::Booked(Box::new(transfer))
    }

    /// The journal lines of the API's accounts as they commit, for a socket of `address` to
    /// pick its own from (the address's prefix, then the transfer's parties). Live only: what
    /// happened before is `history`'s.
    pub async fn subscribe(&self, address: &str) -> Result<Subscription<LedgerEntries>, EngineError> {
        let operator = self.operator().await?;
        // Hashed once here: the filter runs for every line the node commits.
        let prefix = owner_prefix(address);
        let spec = FeedSpec::<LedgerEntries>::new(FEED_LABEL, move |_, entry: &LedgerEntry| {
            entry.transfer.is_some() && may_be_users(&prefix, entry.account)
        });
        self.feeds.subscribe_ledger(spec, Audience::Customer(operator), None)
    }

    /// The transfer a journal line of `address`'s records, as the user sees it; `None` when the
    /// line is not the user's after all.
    pub async fn notification(&self, address: &str, entry: &LedgerEntry) -> Result<Option<UserTransfer>, EngineError> {
        let Some(id) = entry.transfer else {
            return Ok(None);
        };
        let transfer = match self.recent.get(&id) {
            // A hold's later lines (its expiry) show its later state: read those.
            Some(transfer) if entry.kind != "expired" => transfer,
            _ => match self.ledger.transfer_by_id(id).await? {
                Some(transfer) => Arc::new(transfer),
                None => return Ok(None),
            },
        };
        let shown = self.user_transfer(&transfer, entry.kind == "expired").await?;
        Ok((shown.sender == address || shown.destination == address).then_some(shown))
    }

    /// A transfer as a user sees it: `expired` for the line of a hold its time-out released.
    pub async fn user_transfer(&self, transfer: &Transfer, expired: bool) -> Result<UserTransfer, EngineError> {
        // A payout's resolution shows as its hold, with the hold's parties.
        let (hold, status) = match (&transfer.kind, &transfer.request) {
            (TransferKind::PostPending { pending }, _) => (self.hold(*pending).await?, Some(PayoutStatus::Complete)),
            (TransferKind::VoidPending { pending }, TransferRequest::VoidPending { reason, .. }) => {
                let reason = reason.clone().unwrap_or_else(|| "failed".to_owned());
                (self.hold(*pending).await?, Some(PayoutStatus::Failed(reason)))
            }
            (TransferKind::Pending { .. }, _) if expired => {
                (transfer.clone(), Some(PayoutStatus::Failed(TIMED_OUT.to_owned())))
            }
            (TransferKind::Pending { .. }, _) => (transfer.clone(), Some(PayoutStatus::Pending)),
            _ => (transfer.clone(), None),
        };
        let metadata = |field: &str| {
            hold.memo.metadata.as_ref().and_then(|metadata| metadata.get(field)).and_then(|value| value.as_str())
        };
        let sender = match self.owner_address(hold.debit).await? {
            Some(address) => address,
            None => metadata(FROM_IBAN).unwrap_or_default().to_owned(),
        };
        let destination = match self.owner_address(hold.credit).await? {
            Some(address) => address,
            None => metadata(TO_IBAN).unwrap_or_default().to_owned(),
        };
        let updated = match (&hold.kind, expired) {
            (TransferKind::Pending { expires_at }, true) => *expires_at,
            _ => transfer.created,
        };
        Ok(UserTransfer {
            txid: hold.id,
            created: hold.created,
            updated,
            currency: hold.currency.clone(),
            amount: if status == Some(PayoutStatus::Complete) { transfer.amount } else { hold.amount },
            decimals: self.ledger.currencies().decimals(&hold.currency).unwrap_or(0),
            sender,
            destination,
            status,
        })
    }

    async fn hold(&self, id: TransferId) -> Result<Transfer, EngineError> {
        self.ledger.transfer_by_id(id).await?.ok_or_else(|| EngineError::Internal(format!("hold {id} is missing")))
    }

    /// The Bitcoin address owning an account, if one does (an account's owner never changes).
    async fn owner_address(&self, id: AccountId) -> Result<Option<String>, EngineError> {
        if let Some(owner) = self.owners.get(&id) {
            return Ok(owner);
        }
        let owner = match self.ledger.account(id).await? {
            Some(account) if account.owner.kind == OwnerKind::BitcoinAddress => Some(account.owner.id),
            Some(_) => None,
            // Not there (yet): nothing to remember.
            None => return Ok(None),
        };
        self.owners.insert(id, owner.clone());
        Ok(owner)
    }

    /// A user's transfers, oldest first, as `query` selects them (at most [`HISTORY_MAX`]):
    /// each step as it was sent live (a payout's hold, then its outcome).
    pub async fn history(&self, address: &str, query: HistoryQuery) -> Result<Vec<UserTransfer>, EngineError> {
        let owner = Owner { kind: OwnerKind::BitcoinAddress, id: address.to_owned() };
        let accounts = self.ledger.accounts_of_owner(&owner, None, ACCOUNTS_MAX).await?;
        let from = query.since_time.unwrap_or(Millis::MIN);
        // Only the newest N: read each account's journal from its end.
        let newest = query.limit.filter(|_| query.since_time.is_none() && query.since_transaction.is_none());
        // (when, transfer, whether the line is a hold's expiry)
        let mut steps: Vec<(Millis, Transfer, bool)> = Vec::new();
        for account in &accounts {
            let lines = match newest {
                Some(limit) => self.ledger.latest_account_transfers(account.id, limit.min(HISTORY_MAX)).await?,
                None => {
                    let range = EntryRange { from, until: Millis::MAX, after: None, limit: HISTORY_MAX };
                    self.ledger.account_transfers(account.id, range).await?
                }
            };
            for line in lines {
                // The journal lists a hold once, where it was made; its expiry is a step too.
                if let (TransferKind::Pending { expires_at }, Some(PendingState::Expired)) =
                    (&line.transfer.kind, &line.transfer.pending_state)
                {
                    steps.push((*expires_at, line.transfer.clone(), true));
                }
                steps.push((line.transfer.created, line.transfer, false));
            }
        }
        steps.sort_by_key(|(at, transfer, expired)| (*at, *expired, transfer.created, transfer.id));
        steps.dedup_by_key(|(_, transfer, expired)| (transfer.id, *expired));
        let mut shown = Vec::with_capacity(steps.len());
        for (_, transfer, expired) in &steps {
            shown.push(self.user_transfer(transfer, *expired).await?);
        }
        if let Some(since) = query.since_transaction {
            let Some(start) = shown.iter().position(|step| step.txid == since) else {
                return Ok(Vec::new());
            };
            shown.drain(..start);
        }
        if let Some(limit) = query.limit {
            let skip = shown.len().saturating_sub(limit);
            shown.drain(..skip);
        }
        shown.truncate(HISTORY_MAX);
        Ok(shown)
    }

    /// Send money from a verified user to an IBAN: held on its account at once, then posted to
    /// the bank rail or released by [`CccService::settle`], or released by the time-out.
    pub async fn pay_out(
        &self,
        sender: &str,
        iban: &str,
        currency: &str,
        amount: Amount,
    ) -> Result<Moved, EngineError> {
        let Some(user) = self.user(sender).await? else {
            return Ok(Moved::Refused("Not registered: register first"));
        };
        if !user.verified {
            return Ok(Moved::Refused("Not verified: only verified users may send to an IBAN"));
        }
        let debit = self.ensure_user_account(sender, currency).await?;
        let credit = self.ensure_rail(currency).await?;
        let memo = Memo { code: CODE_PAYOUT, reference: None, metadata: Some(serde_json::json!({ TO_IBAN: iban })) };
        let timeout_ms = Millis::try_from(self.config.payout_timeout.as_millis()).unwrap_or(Millis::MAX);
        let request = TransferRequest::Hold { id: TransferId(Uuid::new_v4()), debit, credit, amount, memo, timeout_ms };
        let outcome = self.ledger.transfer(request, Reach::Every).await?;
        Ok(match (outcome.result, outcome.transfer) {
            (TransferResult::Created, Some(transfer)) => self.booked(transfer),
            (result, _) => Moved::Refused(refusal_text(result)),
        })
    }

    /// The bank's answer on a payout (the operator's call): paid (`None`), or failed with a
    /// reason. The same answer again is booked once.
    pub async fn settle(&self, payout: TransferId, failure: Option<String>) -> Result<Moved, EngineError> {
        match self.ledger.transfer_by_id(payout).await? {
            Some(hold) if hold.memo.code == CODE_PAYOUT && matches!(hold.kind, TransferKind::Pending { .. }) => {}
            _ => return Ok(Moved::NotFound("No payout to an IBAN has this id")),
        }
        let id = TransferId(derived_uuid(&["cashgrid ccc settle", &payout.to_string()]));
        let request = match failure {
            None => TransferRequest::PostPending { id, pending: payout, amount: None },
            Some(reason) => TransferRequest::VoidPending { id, pending: payout, reason: Some(reason) },
        };
        let outcome = self.ledger.transfer(request, Reach::Every).await?;
        Ok(match (outcome.result, outcome.transfer) {
            (TransferResult::Created, Some(transfer)) => self.booked(transfer),
            (TransferResult::Exists, Some(transfer)) => Moved::AlreadyBooked(Box::new(transfer)),
            (TransferResult::ExistsWithDifferentFields | TransferResult::PendingTransferAlreadyPosted, _) => {
                Moved::Refused("The payout was settled otherwise already")
            }
            (TransferResult::PendingTransferAlreadyVoided, _) => Moved::Refused("The payout failed already"),
            (TransferResult::PendingTransferExpired, _) => Moved::Refused("The payout timed out already"),
            (result, _) => Moved::Refused(refusal_text(result)),
        })
    }

    /// KYC done: the user gets an IBAN of its own (from the configured country and bank code)
    /// and may send to IBANs.
    pub async fn verify(&self, address: &str) -> Result<ProfileAnswer, EngineError> {
        for attempt in 0..IBAN_ATTEMPTS {
            let Some(iban) = assign_iban(&self.config.iban_country, &self.config.iban_bank_code, address, attempt)
            else {
                return Err(EngineError::Internal("the configured IBAN country and bank code make no IBAN".into()));
            };
            match self.command(address, UserCommand::Verify { iban }).await {
                // Another user has this IBAN (the index refused it): the next one.
                Err(EngineError::Internal(_)) => continue,
                answer => return answer,
            }
        }
        Err(EngineError::Internal("no free IBAN found".into()))
    }
}

/// The `error` text of a refused transfer.
fn refusal_text(result: TransferResult) -> &'static str {
    match result {
        TransferResult::ExceedsCredits => "Insufficient funds",
        TransferResult::DebitAccountFrozen | TransferResult::CreditAccountFrozen => "Account frozen",
        TransferResult::Overflow => "Amount too large",
        _ => "Transfer failed",
    }
}
