//! The original's JSON shapes, field for field and in its key order.

use cashgrid_actors::domain::{Device, Token};
use cashgrid_actors::store::Customer;
use serde::Serialize;
use serde_json::Value;

use crate::time;

/// A device row (§5.3): `info` is echoed as raw JSON text, `status` is always 0.
#[derive(Serialize)]
pub struct DeviceRow<'a> {
    id: i64,
    customer_id: i64,
    uuid: String,
    #[serde(serialize_with = "time::serialize")]
    created: i64,
    #[serde(rename = "type")]
    device_type: &'static str,
    status: i32,
    pubkey: &'a Option<String>,
    algorithm: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    refname: &'a Option<String>,
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

#[derive(Serialize)]
pub struct TokenJson<'a> {
    uuid: String,
    #[serde(serialize_with = "time::serialize")]
    created: i64,
    #[serde(serialize_with = "time::serialize_option")]
    updated: Option<i64>,
    #[serde(rename = "type")]
    token_type: &'static str,
    code_type: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    plain_code: Option<&'a Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secure_code: Option<&'a str>,
    amount: i64,
    symbol: &'a str,
    state: &'static str,
    clearstate: i64,
    #[serde(serialize_with = "time::serialize_option")]
    expires: Option<i64>,
    refname: &'a Option<String>,
    lockrefname: &'a Option<String>,
    info: &'a Option<Value>,
    processing_info: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Serialize)]
pub struct CustomerRow<'a> {
    id: i64,
    #[serde(serialize_with = "time::serialize")]
    created: i64,
    email: &'a str,
    display_name: &'a Option<String>,
    roles: &'a str,
    status: i32,
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
