//! The dncash live feeds and their recipients: which feed delivers which committed event to
//! whom, as the original did (spec §12). The engine's feed hub only fans events out by audience
//! (owner, cash customer, all); each feed's [`FeedSpec`] carries this module's rule as its
//! filter. The WebSocket sessions that serve the feeds are in `websocket.rs`.

use cashgrid_actors::domain::token::{TokenEventKind, TokenState, TokenType};
use cashgrid_actors::feed_hub::{self, Audience, FeedSpec, TokenEvents};
use cashgrid_actors::store::{Customer, EventRecord};

/// The feeds a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    /// The original's `tokenws/v1/tokenchange`: uuids of created, deleted, locked, rejected and
    /// confirmed tokens, for the owner, the cash customer and admins.
    TokenChange,
    /// The original's `adminws/v1/tokenchange`: the same events as `TokenChange`.
    AdminTokenChange,
    /// The original's `clearingws/v1/change`: tokens that got a clearing row (COMPLETED
    /// CASHOUT or CASHIN), for debitor and creditor.
    Clearing,
    /// Every state change with its snapshot, resumable by sequence number.
    Events,
}

impl Feed {
    pub const ALL: [Self; 4] = [Self::TokenChange, Self::AdminTokenChange, Self::Clearing, Self::Events];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::TokenChange => "tokenchange",
            Self::AdminTokenChange => "admin_tokenchange",
            Self::Clearing => "clearing",
            Self::Events => "events",
        }
    }

    /// The feed as the hub takes it: its label and [`delivers`] as its filter.
    pub fn spec(self) -> FeedSpec<TokenEvents> {
        FeedSpec::new(self.label(), move |audience, event| delivers(self, audience, event))
    }
}

/// Create every feed's metric series at zero (once, at start).
pub fn register_initial_series() {
    for feed in Feed::ALL {
        feed_hub::register_feed_series(feed.label());
    }
}

/// Whose events a listen key's customer receives: its own; admins (roles containing `admin`,
/// matched as a substring as the original does) every customer's.
pub fn audience_of(customer: &Customer) -> Audience {
    if customer.roles.contains("admin") {
        Audience::All
    } else {
        Audience::Customer(customer.id)
    }
}

/// Whether `feed` delivers `event` to `audience` (the original's recipient table, §12).
pub fn delivers(feed: Feed, audience: Audience, event: &EventRecord) -> bool {
    let is_owner = audience == Audience::All || audience == Audience::Customer(event.owner_id);
    let is_party = is_owner || event.cash_customer_id.is_some_and(|cash| audience == Audience::Customer(cash));
    match feed {
        Feed::Events => is_party,
        Feed::TokenChange | Feed::AdminTokenChange => match event.kind {
            TokenEventKind::Created | TokenEventKind::Deleted => is_owner,
            TokenEventKind::Locked | TokenEventKind::Rejected | TokenEventKind::Confirmed => is_party,
            TokenEventKind::Updated | TokenEventKind::Expired => false,
        },
        Feed::Clearing => is_party && creates_clearing_row(event),
    }
}

/// A confirm to COMPLETED of a CASHOUT or CASHIN token writes a clearing row (§8.3); its
/// parties (debitor and creditor) are the token's owner and the confirming cash customer.
fn creates_clearing_row(event: &EventRecord) -> bool {
    let token_type = event.snapshot.get("type").and_then(|value| value.as_str()).and_then(TokenType::parse);
    event.kind == TokenEventKind::Confirmed
        && event.to == TokenState::Completed
        && matches!(token_type, Some(TokenType::Cashout | TokenType::Cashin))
}

#[cfg(test)]
mod tests {
    use cashgrid_actors::domain::CustomerId;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn event(
        seq: i64,
        kind: TokenEventKind,
        to: TokenState,
        owner: CustomerId,
        cash: Option<CustomerId>,
    ) -> EventRecord {
        EventRecord {
            seq,
            token: Uuid::new_v4(),
            kind,
            from: None,
            to,
            at: 0,
            owner_id: owner,
            cash_customer_id: cash,
            version: 1,
            snapshot: json!({"type": "CASHOUT"}),
        }
    }

    #[test]
    fn token_changes_reach_owner_cash_customer_and_admin_as_the_original_sends_them() {
        let owner = Audience::Customer(1);
        let cash = Audience::Customer(2);
        let other = Audience::Customer(3);
        let created = event(1, TokenEventKind::Created, TokenState::Open, 1, None);
        let locked = event(2, TokenEventKind::Locked, TokenState::Locked, 1, Some(2));
        let updated = event(3, TokenEventKind::Updated, TokenState::Locked, 1, None);
        let expired = event(4, TokenEventKind::Expired, TokenState::Expired, 1, None);
        for feed in [Feed::TokenChange, Feed::AdminTokenChange] {
            assert!(delivers(feed, owner, &created) && delivers(feed, Audience::All, &created));
            assert!(!delivers(feed, cash, &created) && !delivers(feed, other, &created));
            assert!(
                delivers(feed, owner, &locked)
                    && delivers(feed, cash, &locked)
                    && delivers(feed, Audience::All, &locked)
            );
            assert!(!delivers(feed, other, &locked));
            for silent in [&updated, &expired] {
                assert!(!delivers(feed, owner, silent) && !delivers(feed, Audience::All, silent));
            }
        }
        // The full event feed carries everything that concerns the subscriber.
        for any in [&created, &locked, &updated, &expired] {
            assert!(delivers(Feed::Events, owner, any) && delivers(Feed::Events, Audience::All, any));
            assert!(!delivers(Feed::Events, other, any));
        }
        assert!(delivers(Feed::Events, cash, &locked) && !delivers(Feed::Events, cash, &created));
    }

    #[test]
    fn clearing_changes_are_completed_cash_outs_and_cash_ins_for_debitor_and_creditor() {
        let completed = event(1, TokenEventKind::Confirmed, TokenState::Completed, 1, Some(2));
        assert!(delivers(Feed::Clearing, Audience::Customer(1), &completed));
        assert!(delivers(Feed::Clearing, Audience::Customer(2), &completed));
        assert!(!delivers(Feed::Clearing, Audience::Customer(3), &completed));
        let canceled = event(2, TokenEventKind::Confirmed, TokenState::Canceled, 1, Some(2));
        assert!(!delivers(Feed::Clearing, Audience::Customer(1), &canceled));
        let mut transfer = completed.clone();
        transfer.snapshot = json!({"type": "TRANSFER"});
        assert!(!delivers(Feed::Clearing, Audience::Customer(1), &transfer));
        let mut cash_in = completed.clone();
        cash_in.snapshot = json!({"type": "CASHIN"});
        assert!(delivers(Feed::Clearing, Audience::Customer(2), &cash_in));
    }

    #[test]
    fn a_feeds_spec_filters_with_its_row_of_the_table_under_its_label() {
        let created = event(1, TokenEventKind::Created, TokenState::Open, 1, None);
        let spec = Feed::TokenChange.spec();
        assert_eq!(spec.label, "tokenchange");
        assert!((spec.filter)(Audience::Customer(1), &created));
        assert!(!(spec.filter)(Audience::Customer(2), &created));
        assert!(!(Feed::Clearing.spec().filter)(Audience::Customer(1), &created));
    }

    #[test]
    fn admins_listen_to_everyone_and_customers_to_themselves() {
        let customer = |roles: &str| Customer {
            id: 7,
            email: "bank@example.com".into(),
            display_name: None,
            roles: roles.into(),
            status: 1,
            info: None,
            created: 0,
        };
        assert_eq!(audience_of(&customer("user,admin")), Audience::All);
        assert_eq!(audience_of(&customer("superadmin")), Audience::All, "a substring, as the original matches");
        assert_eq!(audience_of(&customer("user")), Audience::Customer(7));
    }
}
