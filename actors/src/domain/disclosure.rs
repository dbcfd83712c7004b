//! What one customer may see of a token snapshot that concerns two customers.
//!
//! A stored snapshot (`Token::snapshot_json`) names both parties' devices: the owner's phone
//! (`owner_device`) and the cash device that locked it (`lock_device`). The original never
//! showed one party the other's device: its owner views carry `device_uuid` (the owner's own
//! phone) and no lock device, and the cash side's view (V-locked) carries neither. A device
//! uuid is not harmless either: with fixed trigger codes a cash device's uuid *is* its trigger
//! code. So a customer sees a device only if it is its own; admins see everything.

use serde_json::Value;

use super::CustomerId;

/// Who looks at a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Customer(CustomerId),
    /// Admins see every field.
    Admin,
}

/// `snapshot` as `viewer` may see it: `owner_device` only for the owner, `lock_device` only for
/// the customer whose device locked the token. Fields are removed, not nulled, so that a
/// hidden device never reads as "not locked".
pub fn snapshot_for(viewer: Viewer, snapshot: &Value) -> Value {
    let Viewer::Customer(customer) = viewer else {
        return snapshot.clone();
    };
    let mut shown = snapshot.clone();
    if let Value::Object(fields) = &mut shown {
        let party = |name: &str| fields.get(name).and_then(Value::as_i64);
        let is_owner = party("owner_id") == Some(customer);
        let is_locker = party("lock_customer_id") == Some(customer);
        if !is_owner {
            fields.remove("owner_device");
        }
        if !is_locker {
            fields.remove("lock_device");
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn locked_by_another_customer() -> Value {
        json!({"uuid": "t", "owner_id": 1, "owner_device": "phone", "lock_device": "atm", "lock_customer_id": 2})
    }

    #[test]
    fn each_party_sees_only_its_own_device() {
        let snapshot = locked_by_another_customer();
        let owner = snapshot_for(Viewer::Customer(1), &snapshot);
        assert_eq!(owner.get("owner_device"), Some(&json!("phone")));
        assert_eq!(owner.get("lock_device"), None, "the owner never sees the cash side's device");
        let cash = snapshot_for(Viewer::Customer(2), &snapshot);
        assert_eq!(cash.get("lock_device"), Some(&json!("atm")));
        assert_eq!(cash.get("owner_device"), None, "the cash side never sees the owner's phone");
        assert_eq!(cash["uuid"], "t");
        assert_eq!(snapshot_for(Viewer::Admin, &snapshot), snapshot);
    }

    #[test]
    fn a_customer_on_both_sides_sees_both_devices() {
        let mut snapshot = locked_by_another_customer();
        snapshot["lock_customer_id"] = json!(1);
        assert_eq!(snapshot_for(Viewer::Customer(1), &snapshot), snapshot);
    }

    #[test]
    fn a_snapshot_without_parties_shows_no_device() {
        let shown = snapshot_for(Viewer::Customer(1), &json!({"owner_device": "phone", "lock_device": null}));
        assert_eq!(shown, json!({}));
    }
}
