//! `cashgrid`: the server and its command-line tools.

mod admin;
mod ccc_cli;
mod config;
mod ledger_cli;
mod server;
mod tls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ErasedFlags, Layered, ServeArgs, ServeSettings, StoreArgs, StoreSettings};

#[derive(Debug, Parser)]
#[command(name = "cashgrid", version, about = "Actor-based engine for cash tokens, accounts and vouchers")]
struct Cli {
    /// TOML configuration file (see config/example.toml); the environment and flags override it.
    #[arg(long, env = "CASHGRID_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage customers (banks, merchants).
    #[command(subcommand)]
    Customer(admin::CustomerCommand),
    /// Manage API credentials.
    #[command(subcommand)]
    Access(admin::AccessCommand),
    /// Manage portal users (admin API logins).
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage customer parameters (USE_PLAIN_CODES, PARTIAL_CASHOUTS, ...).
    #[command(subcommand)]
    Param(admin::ParamCommand),
    /// Manage ledger accounts.
    #[command(subcommand)]
    Account(ledger_cli::AccountCommand),
    /// Move money between ledger accounts.
    Transfer(ledger_cli::TransferArgs),
    /// The operator's side of the Crypto Capital account API: deposits, KYC, payouts' outcomes.
    #[command(subcommand)]
    Ccc(ccc_cli::CccCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let mut flags: Vec<&dyn ErasedFlags> = vec![&cli.store];
    if let Command::Serve(args) = &cli.command {
        flags.push(args.as_ref());
    }
    let layered = match Layered::load(cli.config.as_deref(), &flags) {
        Ok(layered) => layered,
        Err(error) => return fail(&error),
    };
    let store_settings = StoreSettings::resolve(&layered);
    let result = match cli.command {
        Command::Serve(_) => ServeSettings::resolve(layered, store_settings).and_then(server::serve),
        Command::Customer(command) => admin::run_customer(store_settings, command),
        Command::Access(command) => admin::run_access(store_settings, command),
        Command::User(command) => admin::run_user(store_settings, command),
        Command::Param(command) => admin::run_param(store_settings, command),
        Command::Account(command) => {
            config::currencies(&layered).and_then(|table| ledger_cli::run_account(store_settings, table, command))
        }
        Command::Transfer(args) => {
            config::currencies(&layered).and_then(|table| ledger_cli::run_transfer(store_settings, table, args))
        }
        Command::Ccc(command) => config::currencies(&layered).and_then(|currencies| {
            let engine =
                cashgrid_actors::EngineConfig { currencies, ccc: config::ccc(&layered)?, ..Default::default() };
            ccc_cli::run(store_settings, engine, command)
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("cashgrid: {error:#}");
    ExitCode::FAILURE
}

/// Logs go to stderr; stdout carries only what scripts read (the listening line, CLI JSON).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
