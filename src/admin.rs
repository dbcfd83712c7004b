//! Administrative commands on the same store as a running server: each prints one JSON object
//! on stdout. `user create` makes the first portal admin; everything else can then be done in
//! the portal (admin API) too.
//!
//! The operations are the engine's ([`Customers`], which the portal uses too); this module only
//! parses, words refusals for a terminal and prints. It needs no running engine: `Customers`
//! works on the store and the server key alone.

use std::time::Duration;

use anyhow::Context as _;
use cashgrid_actors::crypto::password::PASSWORD_LENGTH_MIN;
use cashgrid_actors::engine::customers::{Customers, NewPassword, ADMIN_ROLES, USER_ROLES};
use cashgrid_actors::engine::portal::{PortalError, PortalRejection};
use cashgrid_actors::store::{NewCustomer, Scope};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::config::StoreSettings;
use crate::server::{open_store, secret_hasher};

/// How long a command waits for a password-hashing slot; one command hashes at most once, so
/// it never waits in practice.
const HASHING_WAIT: Duration = Duration::from_secs(5);

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
pub enum UserCommand {
    /// Create a portal user (the first admin: `--admin`). Without a password, a random initial
    /// one is printed and the portal asks for a change at first login.
    Create {
        #[arg(long)]
        email: String,
        /// The password (at least 8 characters); prefer the environment variable, flags are
        /// visible to other local users.
        #[arg(long, env = "CASHGRID_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Give the user the admin role (roles `user,admin`).
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        name: Option<String>,
    },
    /// Set a portal user's password (also gives a customer made with `customer create` a login).
    Password {
        #[arg(long)]
        email: String,
        #[arg(long, env = "CASHGRID_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
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

/// The engine's customer operations on the configured store.
async fn customers(settings: &StoreSettings) -> anyhow::Result<Customers> {
    Ok(Customers::new(open_store(settings).await?, HASHING_WAIT))
}

async fn customer_id(customers: &Customers, email: &str) -> anyhow::Result<i64> {
    let customer = customers.customer_by_email(email).await?;
    Ok(customer.with_context(|| format!("no customer with email {email}"))?.id)
}

/// A refusal worded for the command line; faults as they are.
fn refused(error: PortalError, email: &str, hint: &str) -> anyhow::Error {
    match error {
        PortalError::Rejected(PortalRejection::EmailInUse) => {
            anyhow::anyhow!("a customer with email {email} exists already{hint}")
        }
        other => other.into(),
    }
}

/// The password given, checked; or a fresh initial one (then the user must change it).
fn chosen_password(password: Option<String>) -> anyhow::Result<NewPassword> {
    NewPassword::given_or_initial(password)
        .map_err(|_| anyhow::anyhow!("the password must have at least {PASSWORD_LENGTH_MIN} characters"))
}

pub fn run_customer(settings: StoreSettings, command: CustomerCommand) -> anyhow::Result<()> {
    let CustomerCommand::Create { email, name, roles } = command;
    block_on(async move {
        let customers = customers(&settings).await?;
        let new = NewCustomer { email: email.to_lowercase(), display_name: name, roles };
        let customer = customers.create_customer(&new).await.map_err(|error| refused(error, &email, ""))?;
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
        let customers = customers(&settings).await?;
        let customer_id = customer_id(&customers, &customer).await?;
        let created = customers.create_access(&hasher, customer_id, scope).await?;
        Ok(json!({
            "id": created.access.id,
            "customer_id": created.access.customer_id,
            "scope": scope.as_str(),
            "apikey": created.access.apikey,
            "apisecret": created.apisecret,
        }))
    })
}

pub fn run_param(settings: StoreSettings, command: ParamCommand) -> anyhow::Result<()> {
    let ParamCommand::Set { customer, key, value } = command;
    let value: Value = serde_json::from_str(&value).with_context(|| format!("value is not JSON: {value}"))?;
    block_on(async move {
        let customers = customers(&settings).await?;
        let customer_id = customer_id(&customers, &customer).await?;
        customers.save_param(customer_id, &key, &value).await?;
        Ok(json!({ "customer_id": customer_id, "pkey": key, "pvalue": value }))
    })
}

pub fn run_user(settings: StoreSettings, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { email, password, admin, name } => {
            let password = chosen_password(password)?;
            block_on(async move {
                let customers = customers(&settings).await?;
                let roles = if admin { ADMIN_ROLES } else { USER_ROLES };
                let new = NewCustomer { email: email.to_lowercase(), display_name: name, roles: roles.into() };
                let customer = customers
                    .create_user(&new, &password)
                    .await
                    .map_err(|error| refused(error, &email, " (`cashgrid user password` sets its password)"))?;
                let mut output = json!({
                    "id": customer.id,
                    "email": customer.email,
                    "roles": customer.roles,
                    "status": customer.status,
                });
                if let Some(initial) = password.initial_password() {
                    output["initialpassword"] = Value::String(initial.to_owned());
                }
                Ok(output)
            })
        }
        UserCommand::Password { email, password } => {
            let password = chosen_password(password)?;
            block_on(async move {
                let customers = customers(&settings).await?;
                let customer_id = customer_id(&customers, &email.to_lowercase()).await?;
                customers.set_password(customer_id, &password).await?;
                let mut output =
                    json!({ "id": customer_id, "email": email.to_lowercase(), "status": password.status() });
                if let Some(initial) = password.initial_password() {
                    output["initialpassword"] = Value::String(initial.to_owned());
                }
                Ok(output)
            })
        }
    }
}
