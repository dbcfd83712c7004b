//! The original's JSON shapes, field for field and in its key order.

use cashgrid_actors::domain::{Device, Token};
use cashgrid_actors::store::{Account, Customer};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::openapi::schemas::{DeviceTypeName, TokenStateName, TokenTypeName};
use crate::time;

/// A device row (§5.3): `info` is echoed as raw JSON text, `status` is always 0.
#[derive(Serialize, ToSchema)]
#[schema(as = Device)]
pub struct DeviceRow<'a> {
    id: i64,
    customer_id: i64,
    #[schema(format = Uuid)]
    uuid: String,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created: i64,
    #[serde(rename = "type")]
    #[schema(value_type = DeviceTypeName)]
    device_type: &'static str,
    /// Always 0.
    status: i32,
    /// The phone's RSA public key (PEM), as registered.
    #[schema(required = true, value_type = Option<String>)]
    pubkey: &'a Option<String>,
    /// Always null.
    #[schema(required = true)]
    algorithm: Option<String>,
    #[schema(required = true)]
    lat: Option<f64>,
    #[schema(required = true)]
    lon: Option<f64>,
    #[schema(required = true, value_type = Option<String>)]
    refname: &'a Option<String>,
    /// The `info` given at registration, as JSON text.
    #[schema(required = true, value_type = Option<String>)]
    info: &'a Option<String>,
}

impl<'a> DeviceRow<'a> {
    pub fn of(device: &'a Device) -> Self {
        Self {
            id: device.id,
            customer_id: device.customer_id,
            uuid: device.uuid.to_string(),
            created: device.created,
            device_type: device.device_type.as_str(),
            status: 0,
            pubkey: &device.pubkey,
            algorithm: None,
            lat: device.lat,
            lon: device.lon,
            refname: &device.refname,
            info: &device.info,
        }
    }
}

/// Which of the original's three token views to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenView {
    /// Lists and single reads of the Token API: every public column plus `device_uuid`.
    Full,
    /// Create, update, delete and confirm answers: without `device_uuid`.
    Row,
    /// Claim and trigger answers: without the codes.
    Locked,
}

/// A token in one of the original's three views: `plain_code` and `secure_code` are left out
/// of claim and trigger answers, `device_uuid` is only in the Token API's reads.
#[derive(Serialize, ToSchema)]
#[schema(as = Token)]
pub struct TokenJson<'a> {
    #[schema(format = Uuid)]
    uuid: String,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created: i64,
    #[serde(serialize_with = "time::serialize_option")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    updated: Option<i64>,
    #[serde(rename = "type")]
    #[schema(value_type = TokenTypeName)]
    token_type: &'static str,
    /// Always 0.
    code_type: i32,
    /// The 12-digit short code's first six digits, when the issuing bank uses plain codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    plain_code: Option<&'a Option<String>>,
    /// Base64 of the secure code, encrypted to the phone's public key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    secure_code: Option<&'a str>,
    /// Minor units (cents).
    amount: i64,
    #[schema(value_type = String)]
    symbol: &'a str,
    #[schema(value_type = TokenStateName)]
    state: &'static str,
    clearstate: i64,
    #[serde(serialize_with = "time::serialize_option")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    expires: Option<i64>,
    #[schema(required = true, value_type = Option<String>)]
    refname: &'a Option<String>,
    #[schema(required = true, value_type = Option<String>)]
    lockrefname: &'a Option<String>,
    /// Any JSON, as given.
    #[schema(required = true, value_type = Value)]
    info: &'a Option<Value>,
    /// Any JSON, as the cash device gave it.
    #[schema(required = true, value_type = Value)]
    processing_info: &'a Option<Value>,
    /// The phone the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, format = Uuid)]
    device_uuid: Option<String>,
}

impl<'a> TokenJson<'a> {
    pub fn of(token: &'a Token, view: TokenView) -> Self {
        let with_codes = view != TokenView::Locked;
        Self {
            uuid: token.uuid.to_string(),
            created: token.created,
            updated: token.updated,
            token_type: token.token_type.as_str(),
            code_type: 0,
            plain_code: with_codes.then_some(&token.plain_code),
            secure_code: with_codes.then_some(token.secure_code.as_str()),
            amount: token.amount,
            symbol: &token.symbol,
            state: token.state.as_str(),
            clearstate: token.clearstate,
            expires: token.expires,
            refname: &token.refname,
            lockrefname: &token.lockrefname,
            info: &token.info,
            processing_info: &token.processing_info,
            device_uuid: (view == TokenView::Full).then(|| token.owner_device.to_string()),
        }
    }
}

/// A customer row as admins see it (portal `/customers`, clearing `/customers`): without its
/// password hash and TOTP secret; `roles` is the comma text.
#[derive(Serialize, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerRow<'a> {
    id: i64,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created: i64,
    #[schema(value_type = String)]
    email: &'a str,
    #[schema(required = true, value_type = Option<String>)]
    display_name: &'a Option<String>,
    /// Comma-separated, e.g. `user,admin`.
    #[schema(value_type = String)]
    roles: &'a str,
    /// 0 until the first password change, then 1.
    status: i32,
    /// JSON text.
    #[schema(required = true, value_type = Option<String>)]
    info: &'a Option<String>,
}

impl<'a> CustomerRow<'a> {
    pub fn of(customer: &'a Customer) -> Self {
        Self {
            id: customer.id,
            created: customer.created,
            email: &customer.email,
            display_name: &customer.display_name,
            roles: &customer.roles,
            status: customer.status,
            info: &customer.info,
        }
    }
}

/// A settlement account (§5.8) as its owner sees it.
#[derive(Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AccountRow<'a> {
    id: i64,
    customer_id: i64,
    #[schema(value_type = String)]
    value: &'a str,
    /// `BANKACCOUNT`, `CREDITCARD` or `CRYPTOWALLET`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    account_type: &'a str,
    /// 1 for the customer's default account, else 0.
    default: i32,
    #[schema(required = true, value_type = Option<String>)]
    symbol: &'a Option<String>,
    #[schema(required = true, value_type = Option<String>)]
    refname: &'a Option<String>,
}

impl<'a> AccountRow<'a> {
    pub fn of(account: &'a Account) -> Self {
        Self {
            id: account.id,
            customer_id: account.customer_id,
            value: &account.value,
            account_type: &account.account_type,
            default: account.default,
            symbol: &account.symbol,
            refname: &account.refname,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_row_is_written_as_the_store_row_was() {
        let account = Account {
            id: 4,
            customer_id: 7,
            value: "DE00 1234".to_owned(),
            account_type: "BANKACCOUNT".to_owned(),
            default: 1,
            symbol: None,
            refname: Some("main".to_owned()),
        };
        let view = serde_json::to_string(&AccountRow::of(&account)).unwrap_or_default();
        assert_eq!(view, serde_json::to_string(&account).unwrap_or_default());
    }
}
