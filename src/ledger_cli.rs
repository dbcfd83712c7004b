//! `cashgrid account create` and `cashgrid transfer`: the ledger from the command line, on the
//! same store as a running server. Each starts the engine for its one request (transfers are
//! decided by account actors and committed like the server's: correct beside a running node,
//! as a second node is) and prints the Ledger API's JSON for it. A refused transfer prints its
//! result too, and exits with 1.

use std::sync::Arc;

use anyhow::Context as _;
use cashgrid_actors::domain::ledger::{
    AccountFlags, AccountId, AccountKind, Amount, Currencies, Currency, Memo, NewAccount, Owner, OwnerKind, Reach,
    TransferId, TransferRequest, TransferResult,
};
use cashgrid_actors::engine::ledger::Opened;
use cashgrid_actors::store::Store;
use cashgrid_actors::{Engine, EngineConfig};
use cashgrid_http::ledger::views::{AccountView, TransferView};
use clap::{Args, Subcommand};
use uuid::Uuid;

use crate::config::StoreSettings;
use crate::server::{open_store, secret_hasher};

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Open a ledger account.
    Create {
        /// The email of the customer it is kept for.
        #[arg(long)]
        customer: String,
        /// An ISO 4217 code (or a configured currency), e.g. EUR.
        #[arg(long)]
        currency: String,
        /// customer, float, escrow, external_rail or fees.
        #[arg(long, default_value = "customer")]
        kind: String,
        /// The account's id [default: a new uuid].
        #[arg(long)]
        id: Option<Uuid>,
        /// Who owns it: customer, bitcoin_address, wallet_user or account_holder [default: the
        /// customer].
        #[arg(long, requires = "owner_id")]
        owner_kind: Option<String>,
        #[arg(long, requires = "owner_kind")]
        owner_id: Option<String>,
        /// It may go below zero (an outside rail, a float that lends).
        #[arg(long)]
        may_go_negative: bool,
    },
}

/// Move money: posted at once, a hold (`--hold-timeout-ms`), or a hold posted or voided.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The account debited (not with --post-pending or --void-pending).
    #[arg(long, conflicts_with_all = ["post_pending", "void_pending"], requires_all = ["credit", "amount"])]
    debit: Option<Uuid>,
    /// The account credited.
    #[arg(long, requires = "debit")]
    credit: Option<Uuid>,
    /// Minor units (cents); with --post-pending, how much of the hold (all when absent).
    #[arg(long)]
    amount: Option<u64>,
    /// The transfer's id, so that a retry answers `exists` [default: a new uuid].
    #[arg(long)]
    id: Option<Uuid>,
    /// Make a hold released after this many milliseconds unless posted or voided.
    #[arg(long, requires = "debit")]
    hold_timeout_ms: Option<i64>,
    /// Post this hold.
    #[arg(long, conflicts_with = "void_pending")]
    post_pending: Option<Uuid>,
    /// Void this hold.
    #[arg(long, conflicts_with = "amount")]
    void_pending: Option<Uuid>,
    /// The client's code for what kind of payment this is.
    #[arg(long, default_value_t = 0)]
    code: u16,
    #[arg(long)]
    reference: Option<String>,
}

/// What a command prints (the API's JSON, fields in the API's order), and whether it did what
/// was asked (a refused transfer prints its result and exits with 1).
pub(crate) struct Printed {
    pub json: String,
    pub refused: Option<&'static str>,
}

pub(crate) fn printed<T: serde::Serialize>(value: &T) -> anyhow::Result<Printed> {
    Ok(Printed { json: serde_json::to_string(value)?, refused: None })
}

/// Run `work` on an engine over the configured store, and print its JSON.
pub(crate) fn with_engine<F, Fut>(settings: StoreSettings, currencies: Currencies, work: F) -> anyhow::Result<()>
where
    F: FnOnce(Engine, Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Printed>>,
{
    with_engine_of(settings, EngineConfig { currencies, ..EngineConfig::default() }, work)
}

/// [`with_engine`] with more of the engine's settings (one arbiter whatever `config` says).
pub(crate) fn with_engine_of<F, Fut>(settings: StoreSettings, config: EngineConfig, work: F) -> anyhow::Result<()>
where
    F: FnOnce(Engine, Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Printed>>,
{
    let hasher = secret_hasher(&settings)?;
    let output = actix::System::new().block_on(async move {
        let store = open_store(&settings).await?;
        let config = EngineConfig { arbiters: 1, ..config };
        let engine = Engine::start(Arc::clone(&store), hasher, config);
        work(engine, store).await
    })?;
    println!("{}", output.json);
    match output.refused {
        None => Ok(()),
        Some(result) => anyhow::bail!("refused: {result}"),
    }
}

pub fn run_account(settings: StoreSettings, currencies: Currencies, command: AccountCommand) -> anyhow::Result<()> {
    let AccountCommand::Create { customer, currency, kind, id, owner_kind, owner_id, may_go_negative } = command;
    let kind = AccountKind::parse(&kind).with_context(|| format!("unknown account kind '{kind}'"))?;
    let code = Currency::new(&currency).with_context(|| format!("'{currency}' is not a currency code"))?;
    let owner_kind = owner_kind
        .map(|text| OwnerKind::parse(&text).with_context(|| format!("unknown owner kind '{text}'")))
        .transpose()?;
    with_engine(settings, currencies, move |engine, store| async move {
        let found = store.find_customer_by_email(&customer.to_lowercase()).await?;
        let customer_id = found.with_context(|| format!("no customer with email {customer}"))?.id;
        let owner = match (owner_kind, owner_id) {
            (Some(kind), Some(id)) => Owner { kind, id },
            _ => Owner { kind: OwnerKind::Customer, id: customer_id.to_string() },
        };
        let flags = AccountFlags { debits_must_not_exceed_credits: !may_go_negative, ..AccountFlags::default() };
        let new = NewAccount {
            id: AccountId(id.unwrap_or_else(Uuid::new_v4)),
            customer: customer_id,
            owner,
            currency: code,
            kind,
            flags,
        };
        let ledger = engine.ledger();
        let decimals = |account: &cashgrid_actors::domain::ledger::Account| {
            ledger.currencies().decimals(&account.currency).unwrap_or(0)
        };
        match ledger.open(new).await? {
            Opened::Created(account) | Opened::Exists(account) => {
                printed(&AccountView::of(&account, decimals(&account)))
            }
            Opened::ExistsWithDifferentFields(account) => anyhow::bail!("another account has the id {}", account.id),
            Opened::UnknownCurrency => anyhow::bail!("{currency} is not a currency of this ledger"),
            Opened::UnknownCustomer => anyhow::bail!("no customer {customer_id}"),
        }
    })
}

fn request_of(args: TransferArgs) -> anyhow::Result<TransferRequest> {
    let id = TransferId(args.id.unwrap_or_else(Uuid::new_v4));
    let amount =
        args.amount.map(|minor| Amount::new(minor).context("the amount must be from 1 to 2^63 - 1")).transpose()?;
    let memo = Memo { code: args.code, reference: args.reference, metadata: None };
    Ok(match (args.debit, args.credit, args.post_pending, args.void_pending) {
        (Some(debit), Some(credit), None, None) => {
            let (debit, credit) = (AccountId(debit), AccountId(credit));
            let amount = amount.context("--amount is needed")?;
            match args.hold_timeout_ms {
                None => TransferRequest::Post { id, debit, credit, amount, memo },
                Some(timeout_ms) => TransferRequest::Hold { id, debit, credit, amount, memo, timeout_ms },
            }
        }
        (None, None, Some(pending), None) => TransferRequest::PostPending { id, pending: TransferId(pending), amount },
        (None, None, None, Some(pending)) => {
            TransferRequest::VoidPending { id, pending: TransferId(pending), reason: None }
        }
        _ => anyhow::bail!("give --debit, --credit and --amount, or --post-pending, or --void-pending"),
    })
}

/// A transfer's answer, as the API's.
#[derive(serde::Serialize)]
struct TransferPrinted {
    result: &'static str,
    transfer: Option<TransferView>,
}

pub fn run_transfer(settings: StoreSettings, currencies: Currencies, args: TransferArgs) -> anyhow::Result<()> {
    let request = request_of(args)?;
    with_engine(settings, currencies, move |engine, _| async move {
        let outcome = engine.ledger().transfer(request, Reach::Every).await?;
        let answer = TransferPrinted {
            result: outcome.result.as_str(),
            transfer: outcome.transfer.as_ref().map(TransferView::of),
        };
        let refused = match outcome.result {
            TransferResult::Created | TransferResult::Exists => None,
            other => Some(other.as_str()),
        };
        Ok(Printed { refused, ..printed(&answer)? })
    })
}
