//! `cashgrid ccc …`: the operator's side of the Crypto Capital account API, on the same store
//! as a running server (an engine of its own for the one request, like `cashgrid transfer`).
//! Each prints one JSON object; a refusal prints it too and exits with 1.

use cashgrid_actors::domain::ledger::{Transfer, TransferId};
use cashgrid_actors::engine::ccc::{Moved, ProfileAnswer};
use cashgrid_actors::{Engine, EngineConfig};
use cashgrid_http::ccc::operator::read_deposit;
use cashgrid_http::ccc::views::{DepositView, RefusedView, SettledView, VerifiedView};
use clap::Subcommand;

use crate::config::StoreSettings;
use crate::ledger_cli::{printed, with_engine_of, Printed};

#[derive(Debug, Subcommand)]
pub enum CccCommand {
    /// Book a bank payment to a user: its account is credited and it is told at once.
    Deposit {
        /// The user's Bitcoin address.
        #[arg(long)]
        address: String,
        /// An ISO 4217 code (or a configured currency), e.g. USD.
        #[arg(long)]
        currency: String,
        /// Major units, as on the wire, e.g. 100.00.
        #[arg(long)]
        amount: String,
        /// The IBAN the payment came from.
        #[arg(long)]
        from_iban: String,
        /// The bank's reference: a payment under a reference already booked credits nothing.
        #[arg(long)]
        reference: Option<String>,
    },
    /// KYC done: give a registered user an IBAN of its own; it may then send to IBANs.
    Verify {
        /// The user's Bitcoin address.
        #[arg(long)]
        address: String,
    },
    /// The bank's answer on a payout to an IBAN: paid (complete) or not (failed).
    Settle {
        /// The payout's txid.
        #[arg(long)]
        transfer: uuid::Uuid,
        #[arg(long, value_parser = ["complete", "failed"])]
        outcome: String,
        /// Why it failed (sent to the user) [default: failed].
        #[arg(long)]
        message: Option<String>,
    },
}

pub fn run(settings: StoreSettings, config: EngineConfig, command: CccCommand) -> anyhow::Result<()> {
    match command {
        CccCommand::Deposit { address, currency, amount, from_iban, reference } => {
            deposit(settings, config, address, currency, amount, from_iban, reference)
        }
        CccCommand::Verify { address } => with_engine_of(settings, config, move |engine, _| async move {
            match engine.ccc().verify(&address).await? {
                ProfileAnswer::Done(user) => printed(&VerifiedView::of(&user)),
                ProfileAnswer::NotRegistered => refused("Not registered"),
                ProfileAnswer::Refused(rejection) => refused(rejection.message()),
                ProfileAnswer::AlreadyRegistered => refused("Already registered"),
            }
        }),
        CccCommand::Settle { transfer, outcome, message } => {
            let failure = (outcome == "failed").then(|| message.unwrap_or_else(|| "failed".to_owned()));
            with_engine_of(settings, config, move |engine, _| async move {
                match engine.ccc().settle(TransferId(transfer), failure).await? {
                    Moved::Booked(step) => settled(&engine, "settled", &step).await,
                    Moved::AlreadyBooked(step) => settled(&engine, "already_settled", &step).await,
                    Moved::Refused(message) | Moved::NotFound(message) => refused(message),
                }
            })
        }
    }
}

fn refused(message: &'static str) -> anyhow::Result<Printed> {
    Ok(Printed { refused: Some(message), ..printed(&RefusedView::of(message))? })
}

/// A payout's outcome as its user is told it.
async fn settled(engine: &Engine, result: &'static str, step: &Transfer) -> anyhow::Result<Printed> {
    let shown = engine.ccc().user_transfer(step, false).await?;
    printed(&SettledView::of(result, &shown))
}

fn deposit(
    settings: StoreSettings,
    config: EngineConfig,
    address: String,
    currency: String,
    amount: String,
    from_iban: String,
    reference: Option<String>,
) -> anyhow::Result<()> {
    let deposit = read_deposit(&config.currencies, address, currency, &amount, &from_iban, reference)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    with_engine_of(settings, config, move |engine, _| async move {
        let (result, transfer) = match engine.ccc().deposit(deposit).await? {
            Moved::Booked(transfer) => ("booked", transfer),
            Moved::AlreadyBooked(transfer) => ("already_booked", transfer),
            Moved::Refused(message) | Moved::NotFound(message) => return refused(message),
        };
        let decimals = engine.ccc().decimals(transfer.currency.code()).unwrap_or(0);
        printed(&DepositView::of(result, &transfer, decimals))
    })
}
