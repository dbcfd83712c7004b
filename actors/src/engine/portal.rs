//! Portal (admin API) operations: users, sessions, two-factor, credentials, parameters,
//! accounts, devices, statistics and the journal.
//!
//! Every call takes the caller's verified [`Session`] and scopes itself to it; admin-only calls
//! check the role here, not in the frontend. Passwords, API credentials and parameters go
//! through [`super::customers`], which the CLI shares; TOTP secrets are sealed under the server
//! key; sessions are the original's JWTs, signed with the configured secret or a key derived
//! from the server key.

mod session;
mod throttle;
mod totp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use serde_json::Value;

pub use session::{Session, SessionError, ADMIN_ROLE, TWOFA_ROLE};
pub use throttle::{DELAY_MAX as LOGIN_DELAY_MAX, FAILURE_MEMORY as LOGIN_FAILURE_MEMORY};

use super::access::AccessService;
use super::customers::{sealing_fault, Customers, NewPassword, USER_ROLES};
use super::devices::DeviceService;
use super::EngineError;
use crate::clock::now_seconds;
use crate::context::EntityContext;
use crate::crypto::{Sealer, SecretHasher};
use crate::domain::disclosure::{snapshot_for, Viewer};
use crate::domain::{CustomerId, DeviceType};
use crate::store::{
    Access, Account, Credentials, Customer, CustomerUpdate, DeviceStat, JournalEntry, JournalQuery, NewAccount,
    NewCustomer, Scope, StoreError, TokenStat,
};

/// Hours a portal session lasts unless configured (the original's `JWT_VALID_HOURS`).
pub const JWT_VALID_HOURS_DEFAULT: u64 = 168;
/// Label of the JWT key derived from the server key when no JWT secret is configured.
const JWT_KEY_LABEL: &[u8] = b"cashgrid portal jwt v1\0";
/// Customer parameter holding a pending TOTP secret (sealed), as the original names it.
pub const TWOFA_TEMP_PARAM: &str = "twofa_temp";
/// Longest journal page, and the page size when the caller names none.
pub const JOURNAL_LIMIT_MAX: usize = 1_000;
/// Longest e-mail address (the original's column).
pub const EMAIL_LENGTH_MAX: usize = 128;

/// The JWT signing secret as configured; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(String);

impl JwtSecret {
    /// `None` for an empty text: an empty HMAC key would sign for anyone.
    pub fn new(text: impl Into<String>) -> Option<Self> {
        let text = text.into();
        (!text.is_empty()).then_some(Self(text))
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("JwtSecret(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalConfig {
    /// JWT signing secret (`JWT_SECRET`). `None`: a key derived from the server key, the same on
    /// every node that shares the server key.
    pub jwt_secret: Option<JwtSecret>,
    /// Lifetime of a session (`JWT_VALID_HOURS`).
    pub jwt_valid_hours: u64,
    /// Self-registration without a captcha check (`CAPTCHA_OFF`). reCAPTCHA cannot be verified
    /// by this server, so without it every registration is refused as the captcha failure.
    pub captcha_off: bool,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self { jwt_secret: None, jwt_valid_hours: JWT_VALID_HOURS_DEFAULT, captcha_off: false }
    }
}

/// The portal's state inside the engine.
struct Portal {
    jwt: session::Jwt,
    sealer: Sealer,
    throttle: throttle::LoginThrottle,
    captcha_off: bool,
}

impl Portal {
    fn new(config: &PortalConfig, hasher: &SecretHasher) -> Self {
        let jwt_key = match &config.jwt_secret {
            Some(secret) => secret.0.as_bytes().to_vec(),
            None => hasher.derive_key(JWT_KEY_LABEL).to_vec(),
        };
        Self {
            jwt: session::Jwt::new(&jwt_key, config.jwt_valid_hours),
            sealer: hasher.sealer(),
            throttle: throttle::LoginThrottle::default(),
            captcha_off: config.captcha_off,
        }
    }
}

/// Business refusals of portal calls; the frontend gives each the original's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalRejection {
    /// An admin-only call without the admin role.
    NotAllowed,
    /// An admin creating a user whose email exists.
    EmailInUse,
    /// A required field is missing (the original's NOT NULL column error).
    MissingField(&'static str),
    /// A field longer than its column.
    TooLong(&'static str),
    /// A body key that names no column (registration writes the body's keys).
    UnknownColumn(String),
    /// Revealing an API secret with a wrong password (answered after the brake's delay).
    WrongPassword,
    /// Changing the password with a wrong old one.
    PasswordIncorrect,
    /// The new password is missing or too short.
    BadNewPassword,
    /// The new password equals the old one.
    SamePassword,
    /// Enabling two-factor login with a wrong code (or nothing pending).
    InvalidTwofaToken,
    /// A scope other than token-api, cash-api and clearing-api (carries the text given).
    UnknownScope(String),
    /// No customer with the email named.
    UnknownCustomer,
    /// Other rows still reference the row to delete.
    StillReferenced,
    /// A device update with neither `type` nor `refname`.
    NothingToUpdate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortalError {
    #[error("rejected: {0:?}")]
    Rejected(PortalRejection),
    #[error(transparent)]
    Fault(#[from] EngineError),
}

impl From<PortalRejection> for PortalError {
    fn from(rejection: PortalRejection) -> Self {
        Self::Rejected(rejection)
    }
}

impl From<StoreError> for PortalError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Referenced(_) => Self::Rejected(PortalRejection::StillReferenced),
            other => Self::Fault(other.into()),
        }
    }
}

/// Login answers; all are 200s on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A signed session.
    Token(String),
    /// Unknown email or wrong password (answered after the brake's delay).
    WrongCredentials,
    /// Password right, two-factor on, no code given (no delay, not counted).
    NeedTwofa,
    /// Password right, code wrong (answered after the brake's delay).
    WrongTwofa,
}

impl LoginOutcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Token(_) => "ok",
            Self::WrongCredentials => "wrong_credentials",
            Self::NeedTwofa => "need_twofa",
            Self::WrongTwofa => "wrong_twofa",
        }
    }
}

/// A self-registration as the frontend read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    pub email: Option<String>,
    pub password: Option<String>,
    pub display_name: Option<String>,
    /// Raw JSON text, stored as text.
    pub info: Option<String>,
    /// A body key that names no customer column: the insert fails with it, after the checks.
    pub unknown_column: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    Token(String),
    EmailRegistered,
    BadPassword,
    /// The captcha was not verified (always, unless the captcha check is switched off).
    CaptchaFailed,
}

/// A new pending TOTP secret, for the authenticator app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwofaSetup {
    /// RFC 4648 base32, upper case.
    pub secret: String,
    pub url: String,
}

/// API credentials with the secret revealed to their owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealedAccess {
    pub access: Access,
    /// `None` for credentials created before secrets were kept sealed.
    pub apisecret: Option<String>,
}

/// A user an admin created, with the password to hand over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    pub email: String,
    pub initial_password: String,
}

/// Fields of a `PUT /accounts/:id`; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountPatch {
    pub value: Option<String>,
    pub account_type: Option<String>,
    pub default: Option<i32>,
    /// `default` was the number 1: the other accounts stop being the default first.
    pub make_default: bool,
    pub symbol: Option<Option<String>>,
    pub refname: Option<Option<String>>,
}

/// Journal filters of `GET /journal`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFilter {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub filter: Option<String>,
    pub limit: Option<usize>,
}

/// A row of the admin journal overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminJournalEntry {
    pub created: i64,
    pub email: Option<String>,
    pub action: &'static str,
}

fn require_admin(session: &Session) -> Result<(), PortalRejection> {
    if session.is_admin() {
        Ok(())
    } else {
        Err(PortalRejection::NotAllowed)
    }
}

/// Lower-cased, checked e-mail address for a new user.
fn new_email(email: Option<String>) -> Result<String, PortalRejection> {
    let email = email.ok_or(PortalRejection::MissingField("email"))?;
    if email.chars().count() > EMAIL_LENGTH_MAX {
        return Err(PortalRejection::TooLong("email"));
    }
    Ok(email.to_lowercase())
}

/// Why a session was not accepted: a refused token, or the store could not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCheck {
    Refused(SessionError),
    Fault(EngineError),
}

/// The portal's operations, with what they share: sessions, the login brake and the sealer.
#[derive(Clone)]
pub struct PortalService {
    context: Arc<EntityContext>,
    portal: Arc<Portal>,
    customers: Arc<Customers>,
    access: AccessService,
    devices: DeviceService,
}

impl PortalService {
    pub(super) fn new(
        context: Arc<EntityContext>,
        config: &PortalConfig,
        customers: Arc<Customers>,
        access: AccessService,
        devices: DeviceService,
    ) -> Self {
        let portal = Arc::new(Portal::new(config, &context.hasher));
        Self { context, portal, customers, access, devices }
    }

    /// The session a portal JWT carries, or why it is refused. A valid token of a customer
    /// that was deleted since is refused: its sessions end with it (one read by primary key).
    pub async fn verify_session(&self, token: &str) -> Result<Session, SessionCheck> {
        let session = self.portal.jwt.verify(token, now_seconds()).map_err(SessionCheck::Refused)?;
        match self.context.store.load_customer(session.id).await {
            Ok(Some(_)) => Ok(session),
            Ok(None) => Err(SessionCheck::Refused(SessionError::Revoked)),
            Err(error) => Err(SessionCheck::Fault(error.into())),
        }
    }

    /// Count a failed attempt for `email` and wait the brake's delay.
    async fn failed_attempt(&self, email: &str) {
        let delay = self.portal.throttle.failure(email, Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    fn sign_session(&self, customer: &Customer, twofa: bool) -> Result<String, EngineError> {
        self.portal.jwt.sign(customer, twofa, now_seconds()).map_err(|error| {
            tracing::error!(%error, "signing a portal session");
            EngineError::Internal(error)
        })
    }

    async fn credentials(&self, email: &str) -> Result<Option<Credentials>, EngineError> {
        Ok(self.context.store.find_credentials(&email.to_lowercase()).await?)
    }

    /// A fresh session for the customer with this email, after a change of its row.
    async fn session_for(&self, email: &str) -> Result<String, PortalError> {
        let credentials = self.credentials(email).await?.ok_or(PortalRejection::UnknownCustomer)?;
        Ok(self.sign_session(&credentials.customer, credentials.twofa_secret.is_some())?)
    }

    // --- Sessions ---

    /// `POST /auth`: password, then the TOTP code when two-factor login is on.
    pub async fn login(&self, email: &str, password: &str, code: Option<&str>) -> Result<LoginOutcome, EngineError> {
        let outcome = self.login_outcome(email, password, code).await?;
        metrics::counter!(crate::metrics::PORTAL_LOGINS, "result" => outcome.label()).increment(1);
        Ok(outcome)
    }

    async fn login_outcome(
        &self,
        email: &str,
        password: &str,
        code: Option<&str>,
    ) -> Result<LoginOutcome, EngineError> {
        let credentials = self.credentials(email).await?;
        let stored = credentials.as_ref().and_then(|found| found.password_hash.clone());
        let matches = self.customers.password_matches(stored, password.to_owned()).await?;
        let Some(credentials) = credentials.filter(|_| matches) else {
            self.failed_attempt(email).await;
            return Ok(LoginOutcome::WrongCredentials);
        };
        if let Some(sealed) = &credentials.twofa_secret {
            let Some(code) = code.filter(|code| !code.is_empty()) else {
                return Ok(LoginOutcome::NeedTwofa);
            };
            let secret = self.portal.sealer.open_totp_secret(credentials.customer.id, sealed).map_err(sealing_fault)?;
            if !totp::code_matches(&secret, code, u64::try_from(now_seconds()).unwrap_or(0)) {
                self.failed_attempt(email).await;
                return Ok(LoginOutcome::WrongTwofa);
            }
        }
        self.portal.throttle.success(email);
        Ok(LoginOutcome::Token(self.sign_session(&credentials.customer, credentials.twofa_secret.is_some())?))
    }

    /// `POST /auth/register`: checks in the original's order, then a `user` with status 1.
    pub async fn register(&self, registration: Registration) -> Result<RegisterOutcome, PortalError> {
        if let Some(email) = &registration.email {
            if self.context.store.find_customer_by_email(&email.to_lowercase()).await?.is_some() {
                return Ok(RegisterOutcome::EmailRegistered);
            }
        }
        let Some(password) = registration.password.and_then(|password| NewPassword::chosen(password).ok()) else {
            return Ok(RegisterOutcome::BadPassword);
        };
        if !self.portal.captcha_off {
            return Ok(RegisterOutcome::CaptchaFailed);
        }
        if let Some(column) = registration.unknown_column {
            return Err(PortalRejection::UnknownColumn(column).into());
        }
        let email = new_email(registration.email)?;
        let new = NewCustomer {
            email: email.clone(),
            display_name: registration.display_name.clone(),
            roles: USER_ROLES.into(),
        };
        let mut customer = match self.customers.create_user(&new, &password).await {
            Ok(customer) => customer,
            Err(PortalError::Rejected(PortalRejection::EmailInUse)) => return Ok(RegisterOutcome::EmailRegistered),
            Err(error) => return Err(error),
        };
        if registration.info.is_some() {
            let update = CustomerUpdate {
                display_name: registration.display_name,
                roles: Some(USER_ROLES.into()),
                info: registration.info.clone(),
            };
            self.context.store.update_customer(&email, &update).await?;
            customer.info = registration.info;
        }
        Ok(RegisterOutcome::Token(self.sign_session(&customer, false)?))
    }

    /// `PUT /auth/changepw`: the old password, then the new one's rules; a new session.
    pub async fn change_password(
        &self,
        session: &Session,
        old: Option<String>,
        new: Option<String>,
    ) -> Result<String, PortalError> {
        let credentials = self.credentials(&session.email).await?;
        let stored = credentials.as_ref().and_then(|found| found.password_hash.clone());
        let old = old.unwrap_or_default();
        let matches = self.customers.password_matches(stored, old.clone()).await?;
        let Some(credentials) = credentials.filter(|_| matches) else {
            return Err(PortalRejection::PasswordIncorrect.into());
        };
        let new = NewPassword::chosen(new.unwrap_or_default())?;
        if new.text() == old {
            return Err(PortalRejection::SamePassword.into());
        }
        self.customers.set_password(credentials.customer.id, &new).await?;
        self.session_for(&session.email).await
    }

    /// `POST /auth/create` (admin): a `user` with a random initial password and status 0.
    pub async fn create_user(&self, session: &Session, email: Option<String>) -> Result<CreatedUser, PortalError> {
        require_admin(session)?;
        let given = email.clone();
        let email = new_email(email)?;
        if self.context.store.find_customer_by_email(&email).await?.is_some() {
            return Err(PortalRejection::EmailInUse.into());
        }
        let password = NewPassword::initial();
        let new = NewCustomer { email: email.clone(), display_name: None, roles: USER_ROLES.into() };
        self.customers.create_user(&new, &password).await?;
        Ok(CreatedUser { email: given.unwrap_or(email), initial_password: password.text().to_owned() })
    }

    // --- Two-factor login ---

    /// `GET /auth/twofa`: a new pending secret (sealed in the `twofa_temp` parameter).
    pub async fn begin_twofa(&self, session: &Session) -> Result<TwofaSetup, PortalError> {
        let secret = totp::new_secret();
        let sealed = self.portal.sealer.seal_totp_secret(session.id, &secret).map_err(sealing_fault)?;
        let stored = Value::String(base64::engine::general_purpose::STANDARD.encode(sealed));
        self.access.save_param(session.id, TWOFA_TEMP_PARAM, &stored).await?;
        Ok(TwofaSetup { secret: totp::base32(&secret), url: totp::provisioning_url(&session.email, &secret) })
    }

    /// `POST /auth/twofa`: a right code for the pending secret turns two-factor login on.
    pub async fn enable_twofa(&self, session: &Session, code: Option<&str>) -> Result<String, PortalError> {
        let pending = self.context.store.load_param(session.id, TWOFA_TEMP_PARAM).await?;
        let sealed = pending
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok());
        let secret = sealed.as_ref().and_then(|sealed| self.portal.sealer.open_totp_secret(session.id, sealed).ok());
        let (Some(sealed), Some(secret), Some(code)) = (sealed, secret, code) else {
            return Err(PortalRejection::InvalidTwofaToken.into());
        };
        if !totp::code_matches(&secret, code, u64::try_from(now_seconds()).unwrap_or(0)) {
            return Err(PortalRejection::InvalidTwofaToken.into());
        }
        self.context.store.set_twofa_secret(session.id, Some(&sealed)).await?;
        self.access.delete_param(session.id, TWOFA_TEMP_PARAM).await?;
        self.session_for(&session.email).await
    }

    /// `DELETE /auth/twofa`: two-factor login off; a new session.
    pub async fn disable_twofa(&self, session: &Session) -> Result<String, PortalError> {
        self.context.store.set_twofa_secret(session.id, None).await?;
        self.session_for(&session.email).await
    }

    /// `DELETE /customers/:email/twofa` (admin): that user's two-factor login off; the original
    /// answers with a session of that user.
    pub async fn reset_twofa(&self, session: &Session, email: &str) -> Result<String, PortalError> {
        require_admin(session)?;
        let credentials = self.credentials(email).await?.ok_or(PortalRejection::UnknownCustomer)?;
        self.context.store.set_twofa_secret(credentials.customer.id, None).await?;
        Ok(self.sign_session(&credentials.customer, false)?)
    }

    // --- Customers (admin) ---

    pub async fn list_customers(&self, session: &Session) -> Result<Vec<Customer>, PortalError> {
        require_admin(session)?;
        Ok(self.context.store.list_customers().await?)
    }

    /// Overwrite display name, roles and info; rows matched.
    pub async fn update_customer(
        &self,
        session: &Session,
        email: &str,
        update: &CustomerUpdate,
    ) -> Result<u64, PortalError> {
        require_admin(session)?;
        if update.roles.is_none() {
            return Err(PortalRejection::MissingField("roles").into());
        }
        let matched = self.context.store.update_customer(&email.to_lowercase(), update).await?;
        self.access.forget_customer(email);
        Ok(matched)
    }

    pub async fn delete_customer(&self, session: &Session, email: &str) -> Result<u64, PortalError> {
        require_admin(session)?;
        let deleted = self.context.store.delete_customer(&email.to_lowercase()).await?;
        self.access.forget_customer(email);
        Ok(deleted)
    }

    // --- API credentials ---

    /// `POST /access`: new credentials; the secret is kept as a keyed hash (for authentication)
    /// and sealed (so that its owner can reveal it with the password).
    pub async fn create_access(&self, session: &Session, scope: Option<&str>) -> Result<Access, PortalError> {
        let scope = scope
            .and_then(Scope::parse)
            .ok_or_else(|| PortalRejection::UnknownScope(scope.unwrap_or("undefined").to_owned()))?;
        Ok(self.customers.create_access(&self.context.hasher, session.id, scope).await?.access)
    }

    /// `GET /access?scope=`: the caller's credentials of one scope (none without a scope).
    pub async fn list_access(&self, session: &Session, scope: Option<&str>) -> Result<Vec<Access>, PortalError> {
        let Some(scope) = scope.and_then(Scope::parse) else {
            return Ok(Vec::new());
        };
        let records = self.context.store.list_access(session.id, scope).await?;
        Ok(records.into_iter().map(|record| record.access).collect())
    }

    /// `PUT /access/:id`: the secret, to its owner, after the password (with the login brake).
    /// `None` when the credentials are not the caller's.
    pub async fn reveal_access(
        &self,
        session: &Session,
        id: i64,
        password: Option<String>,
    ) -> Result<Option<RevealedAccess>, PortalError> {
        let credentials = self.credentials(&session.email).await?;
        let stored = credentials.and_then(|found| found.password_hash);
        if !self.customers.password_matches(stored, password.unwrap_or_default()).await? {
            self.failed_attempt(&session.email).await;
            return Err(PortalRejection::WrongPassword.into());
        }
        let Some(record) =
            self.context.store.load_access(id).await?.filter(|record| record.access.customer_id == session.id)
        else {
            return Ok(None);
        };
        let apisecret = Customers::api_secret(&self.context.hasher, &record)?;
        Ok(Some(RevealedAccess { access: record.access, apisecret }))
    }

    /// `DELETE /access/:id`: rows deleted. The key stops authenticating on this node at once.
    pub async fn delete_access(&self, session: &Session, id: i64) -> Result<u64, PortalError> {
        let record = self.context.store.load_access(id).await?.filter(|record| record.access.customer_id == session.id);
        let deleted = self.context.store.delete_access(session.id, id).await?;
        if let Some(record) = record {
            self.access.forget_key(&record.access.apikey);
        }
        Ok(deleted)
    }

    // --- Devices ---

    /// `PUT /devices/:id`: type and/or refname of the caller's device; rows matched.
    pub async fn update_device(
        &self,
        session: &Session,
        id: i64,
        device_type: Option<DeviceType>,
        refname: Option<Option<String>>,
    ) -> Result<u64, PortalError> {
        if device_type.is_none() && refname.is_none() {
            return Err(PortalRejection::NothingToUpdate.into());
        }
        let device = self.context.store.load_device_by_id(id).await?.filter(|device| device.customer_id == session.id);
        let matched = self.context.store.update_device(session.id, id, device_type, refname).await?;
        if let Some(device) = device {
            self.devices.forget(device.uuid);
        }
        Ok(matched)
    }

    /// `DELETE /devices/:id`: rows deleted; refused while tokens reference the device.
    pub async fn delete_device(&self, session: &Session, id: i64) -> Result<u64, PortalError> {
        let device = self.context.store.load_device_by_id(id).await?.filter(|device| device.customer_id == session.id);
        let deleted = self.context.store.delete_device(session.id, id).await?;
        if let Some(device) = device {
            self.devices.forget(device.uuid);
        }
        Ok(deleted)
    }

    // --- Accounts ---

    pub async fn create_account(&self, session: &Session, account: &NewAccount) -> Result<Account, PortalError> {
        Ok(self.context.store.insert_account(session.id, account).await?)
    }

    pub async fn list_accounts(&self, session: &Session, default: Option<bool>) -> Result<Vec<Account>, PortalError> {
        Ok(self.context.store.list_accounts(session.id, default).await?)
    }

    /// One of the caller's accounts (the original showed anyone's).
    pub async fn account(&self, session: &Session, id: i64) -> Result<Option<Account>, PortalError> {
        Ok(self.context.store.load_account(id).await?.filter(|account| account.customer_id == session.id))
    }

    /// Change one of the caller's accounts (never its owner); rows matched.
    pub async fn update_account(&self, session: &Session, id: i64, patch: AccountPatch) -> Result<u64, PortalError> {
        let Some(mut account) = self.account(session, id).await? else {
            return Ok(0);
        };
        if let Some(value) = patch.value {
            account.value = value;
        }
        if let Some(account_type) = patch.account_type {
            account.account_type = account_type;
        }
        if let Some(default) = patch.default {
            account.default = default;
        }
        if let Some(symbol) = patch.symbol {
            account.symbol = symbol;
        }
        if let Some(refname) = patch.refname {
            account.refname = refname;
        }
        Ok(self.context.store.update_account(session.id, &account, patch.make_default).await?)
    }

    pub async fn delete_account(&self, session: &Session, id: i64) -> Result<u64, PortalError> {
        Ok(self.context.store.delete_account(session.id, id).await?)
    }

    // --- Parameters ---

    /// A parameter of the caller, read from the store (not the short-lived cache).
    pub async fn param_value(&self, session: &Session, key: &str) -> Result<Option<Value>, PortalError> {
        Ok(self.context.store.load_param(session.id, key).await?)
    }

    pub async fn set_param(&self, session: &Session, key: &str, value: &Value) -> Result<(), PortalError> {
        Ok(self.access.save_param(session.id, key, value).await?)
    }

    pub async fn remove_param(&self, session: &Session, key: &str) -> Result<u64, PortalError> {
        Ok(self.access.delete_param(session.id, key).await?)
    }

    // --- Statistics and journal ---

    /// Sums and counts by state and type: the caller's tokens and those its devices locked;
    /// every token for an admin.
    pub async fn token_stats(&self, session: &Session) -> Result<Vec<TokenStat>, PortalError> {
        let customer = (!session.is_admin()).then_some(session.id);
        Ok(self.context.store.token_stats(customer).await?)
    }

    /// The caller's journal (every customer's for an admin), newest first.
    pub async fn journal(&self, session: &Session, filter: JournalFilter) -> Result<Vec<JournalEntry>, PortalError> {
        let query = JournalQuery {
            customer: (!session.is_admin()).then_some(session.id),
            from: filter.from,
            to: filter.to,
            filter: filter.filter,
            limit: filter.limit.unwrap_or(JOURNAL_LIMIT_MAX).min(JOURNAL_LIMIT_MAX),
        };
        let mut entries = self.context.store.journal(&query).await?;
        // A customer's copy of another customer's token shows only its own device.
        if !session.is_admin() {
            let viewer = Viewer::Customer(session.id);
            for entry in &mut entries {
                entry.data = snapshot_for(viewer, &entry.data);
            }
        }
        Ok(entries)
    }

    /// `GET /admin/devicestat` (admin): every device with its customer's email.
    pub async fn device_stats(&self, session: &Session) -> Result<Vec<DeviceStat>, PortalError> {
        require_admin(session)?;
        Ok(self.context.store.device_stats().await?)
    }

    /// `GET /admin/journal` (admin): the latest journal rows of all customers, with emails.
    pub async fn admin_journal(&self, session: &Session) -> Result<Vec<AdminJournalEntry>, PortalError> {
        require_admin(session)?;
        let query = JournalQuery { limit: JOURNAL_LIMIT_MAX, ..JournalQuery::default() };
        let entries = self.context.store.journal(&query).await?;
        let emails: HashMap<CustomerId, String> = self
            .context
            .store
            .list_customers()
            .await?
            .into_iter()
            .map(|customer| (customer.id, customer.email))
            .collect();
        Ok(entries
            .into_iter()
            .map(|entry| AdminJournalEntry {
                created: entry.created,
                email: emails.get(&entry.customer_id).cloned(),
                action: entry.action,
            })
            .collect())
    }
}
