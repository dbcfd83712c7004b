//! Administrative commands on the same store as a running server (until the admin API exists):
//! each prints one JSON object on stdout.

use anyhow::Context as _;
use cashgrid_actors::crypto::new_api_credential;
use cashgrid_actors::store::{NewCustomer, Scope, Store, StoreError};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::config::StoreSettings;
use crate::server::{open_store, secret_hasher};

/// Attempts at drawing an API key that is not taken yet.
const APIKEY_ATTEMPTS: usize = 5;

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated roles, e.g. `user,admin`.
        #[arg(long, default_value = "user")]
        roles: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Create API credentials; the secret is shown only here.
    Create {
        /// The customer's email.
        #[arg(long)]
        customer: String,
        /// token-api, cash-api or clearing-api.
        #[arg(long)]
        scope: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ParamCommand {
    /// Set a customer parameter to a JSON value.
    Set {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        key: String,
        /// JSON value, e.g. `true` or `{}`.
        #[arg(long)]
        value: String,
    },
}

fn block_on<F: std::future::Future<Output = anyhow::Result<Value>>>(future: F) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
    let output = runtime.block_on(future)?;
    println!("{output}");
    Ok(())
}

async fn customer_id(store: &dyn Store, email: &str) -> anyhow::Result<i64> {
    let customer = store.find_customer_by_email(email).await?;
    Ok(customer.with_context(|| format!("no customer with email {email}"))?.id)
}

pub fn run_customer(settings: StoreSettings, command: CustomerCommand) -> anyhow::Result<()> {
    let CustomerCommand::Create { email, name, roles } = command;
    block_on(async move {
        let store = open_store(&settings).await?;
        let new = NewCustomer { email: email.to_ascii_lowercase(), display_name: name, roles };
        let customer = match store.create_customer(&new).await {
            Err(StoreError::Duplicate(_)) => anyhow::bail!("a customer with email {email} exists already"),
            other => other?,
        };
        Ok(json!({
            "id": customer.id,
            "email": customer.email,
            "display_name": customer.display_name,
            "roles": customer.roles,
        }))
    })
}

pub fn run_access(settings: StoreSettings, command: AccessCommand) -> anyhow::Result<()> {
    let AccessCommand::Create { customer, scope } = command;
    let scope = Scope::parse(&scope).with_context(|| format!("Unknown scope: {scope}"))?;
    let hasher = secret_hasher(&settings)?;
    block_on(async move {
        let store = open_store(&settings).await?;
        let customer_id = customer_id(store.as_ref(), &customer).await?;
        let apisecret = new_api_credential();
        for _ in 0..APIKEY_ATTEMPTS {
            let apikey = new_api_credential();
            match store.create_access(customer_id, scope, &apikey, &hasher.api_secret_hash(&apisecret)).await {
                Ok(access) => {
                    return Ok(json!({
                        "id": access.id,
                        "customer_id": access.customer_id,
                        "scope": scope.as_str(),
                        "apikey": access.apikey,
                        "apisecret": apisecret,
                    }));
                }
                Err(StoreError::Duplicate(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        anyhow::bail!("could not draw an unused API key")
    })
}

pub fn run_param(settings: StoreSettings, command: ParamCommand) -> anyhow::Result<()> {
    let ParamCommand::Set { customer, key, value } = command;
    let value: Value = serde_json::from_str(&value).with_context(|| format!("value is not JSON: {value}"))?;
    block_on(async move {
        let store = open_store(&settings).await?;
        let customer_id = customer_id(store.as_ref(), &customer).await?;
        store.save_param(customer_id, &key, &value).await?;
        Ok(json!({ "customer_id": customer_id, "pkey": key, "pvalue": value }))
    })
}
