//! Devices: end-user phones that receive tokens and cash devices that claim them.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CustomerId, Millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceType {
    Mobile,
    Atm,
    CashRegister,
    Other,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "MOBILE",
            Self::Atm => "ATM",
            Self::CashRegister => "CASH_REGISTER",
            Self::Other => "OTHER",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        // The original's MySQL enum compares case-insensitively.
        match text.to_ascii_uppercase().as_str() {
            "MOBILE" => Some(Self::Mobile),
            "ATM" => Some(Self::Atm),
            "CASH_REGISTER" => Some(Self::CashRegister),
            "OTHER" => Some(Self::Other),
            _ => None,
        }
    }
}

/// A registered device. `id` is the store's row number, shown on the wire for compatibility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: i64,
    pub uuid: Uuid,
    pub customer_id: CustomerId,
    pub created: Millis,
    pub device_type: DeviceType,
    pub pubkey: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub refname: Option<String>,
    /// Raw JSON text, echoed undecoded as the original does.
    pub info: Option<String>,
}

/// Devices are registered, changed and removed through the store by the engine and the portal
/// (ARCHITECTURE.md, "Deliberate changes from the brief"): their actors only hold them, with
/// the parsed key, for the hot paths. So a device takes no command and records no event.
impl super::entity::Entity for Device {
    const KIND: &'static str = "device";
    type Id = Uuid;
    type Create = Device;
    type Command = Infallible;
    type Event = Infallible;
    type Rejection = Infallible;
    type Transition = Device;

    fn id(&self) -> Uuid {
        self.uuid
    }

    /// A device row carries no version: every snapshot is the first.
    fn version(&self) -> i64 {
        1
    }

    fn is_final(&self) -> bool {
        false
    }

    fn create(device: Device, _: Millis) -> Result<Device, Infallible> {
        Ok(device)
    }

    fn apply(&self, command: &Infallible, _: Millis) -> Result<Device, Infallible> {
        match *command {}
    }

    /// The indexed columns of the `devices` table.
    fn index_columns(&self) -> Vec<(&'static str, String)> {
        vec![("customer_id", self.customer_id.to_string())]
    }
}
