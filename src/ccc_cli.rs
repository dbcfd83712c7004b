//! `cashgrid ccc …`: the operator's side of the Crypto Capital account API, on the same store
//! as a running server (an engine of its own for the one request, like `cashgrid transfer`).
//! Each prints one JSON object; a refusal prints it too and exits with 1.

use anyhow::Context as _;
use cashgrid_actors::domain::ccc::parse_iban;
use cashgrid_actors::domain::ledger::{major_units, parse_major, Currencies, MajorAmountError};
use cashgrid_actors::engine::ccc::{Deposit, Moved};
use clap::Subcommand;
use serde_json::json;

use crate::config::StoreSettings;
use crate::ledger_cli::{printed, with_engine, Printed};

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
}

pub fn run(settings: StoreSettings, currencies: Currencies, command: CccCommand) -> anyhow::Result<()> {
    let CccCommand::Deposit { address, currency, amount, from_iban, reference } = command;
    let from_iban = parse_iban(&from_iban).context("--from-iban is not a valid IBAN")?;
    let decimals = cashgrid_actors::domain::ledger::Currency::new(&currency)
        .and_then(|code| currencies.decimals(&code))
        .with_context(|| format!("{currency} is not a currency of this ledger"))?;
    let minor = parse_major(&amount, decimals).map_err(|error| match error {
        MajorAmountError::Malformed => anyhow::anyhow!("--amount is not a decimal number such as 100.00"),
        MajorAmountError::TooManyDecimals => anyhow::anyhow!("--amount has more than {decimals} decimal places"),
        MajorAmountError::NotPositive => anyhow::anyhow!("--amount must be positive"),
        MajorAmountError::TooLarge => anyhow::anyhow!("--amount is too large"),
    })?;
    let deposit = Deposit { address, currency, amount: minor, from_iban, reference };
    with_engine(settings, currencies, move |engine, _| async move {
        let (result, transfer) = match engine.ccc().deposit(deposit).await? {
            Moved::Booked(transfer) => ("booked", transfer),
            Moved::AlreadyBooked(transfer) => ("already_booked", transfer),
            Moved::Refused(message) => {
                return Ok(Printed {
                    refused: Some(message),
                    ..printed(&json!({ "result": "refused", "message": message }))?
                });
            }
        };
        let decimals = engine.ccc().decimals(transfer.currency.code()).unwrap_or(0);
        printed(&json!({
            "result": result,
            "txid": transfer.id.to_string(),
            "currency": transfer.currency.code(),
            "amount": major_units(i128::from(transfer.amount.get()), decimals),
        }))
    })
}
