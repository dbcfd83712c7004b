//! Administrative commands on the same store as a running server: each prints one JSON object
//! on stdout. `user create` makes the first portal admin; everything else can then be done in
//! the portal (admin API) too.

use anyhow::Context as _;
use cashgrid_actors::crypto::new_api_credential;
use cashgrid_actors::crypto::password::{hash_password, new_initial_password, password_is_acceptable, PASSWORD_LENGTH_MIN};
use cashgrid_actors::engine::portal::{ADMIN_ROLES, STATUS_MUST_CHANGE_PASSWORD, STATUS_OK, USER_ROLES};
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
                    // Sealed too, so that its owner can reveal it in the portal.
                    let sealed = hasher.sealer().seal_api_secret(&access.apikey, &apisecret)?;
                    if let Err(error) = store.set_access_secret_encrypted(access.id, &sealed).await {
                        let _ = store.delete_access(customer_id, access.id).await;
                        return Err(error.into());
                    }
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

/// The password given, checked; or a fresh initial one (then the user must change it).
fn chosen_password(password: Option<String>) -> anyhow::Result<(String, i32, bool)> {
    match password {
        Some(password) if password_is_acceptable(&password) => Ok((password, STATUS_OK, false)),
        Some(_) => anyhow::bail!("the password must have at least {PASSWORD_LENGTH_MIN} characters"),
        None => Ok((new_initial_password(), STATUS_MUST_CHANGE_PASSWORD, true)),
    }
}

pub fn run_user(settings: StoreSettings, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { email, password, admin, name } => {
            let (password, status, generated) = chosen_password(password)?;
            block_on(async move {
                let store = open_store(&settings).await?;
                let hash = hash_password(&password)?;
                let roles = if admin { ADMIN_ROLES } else { USER_ROLES };
                let new = NewCustomer { email: email.to_lowercase(), display_name: name, roles: roles.into() };
                let customer = match store.create_user(&new, &hash, status).await {
                    Err(StoreError::Duplicate(_)) => anyhow::bail!(
                        "a customer with email {email} exists already (`cashgrid user password` sets its password)"
                    ),
                    other => other?,
                };
                let mut output = json!({
                    "id": customer.id,
                    "email": customer.email,
                    "roles": customer.roles,
                    "status": customer.status,
                });
                if generated {
                    output["initialpassword"] = Value::String(password);
                }
                Ok(output)
            })
        }
        UserCommand::Password { email, password } => {
            let (password, status, generated) = chosen_password(password)?;
            block_on(async move {
                let store = open_store(&settings).await?;
                let customer_id = customer_id(store.as_ref(), &email.to_lowercase()).await?;
                store.set_password(customer_id, &hash_password(&password)?, status).await?;
                let mut output = json!({ "id": customer_id, "email": email.to_lowercase(), "status": status });
                if generated {
                    output["initialpassword"] = Value::String(password);
                }
                Ok(output)
            })
        }
    }
}
