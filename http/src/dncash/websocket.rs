//! dncash-io WebSockets (§12): the original's change feeds, and a resumable feed of every
//! state change with its snapshot.
//!
//! | path | listen key | frames |
//! |---|---|---|
//! | `/dnapi/tokenws/v1/tokenchange/<key>` | Token API key | `{"uuid":"…"}` (the original's) |
//! | `/dnapi/clearingws/v1/change/<key>` | Clearing API key | `{"uuid":"…"}` (the original's) |
//! | `/dnapi/adminws/v1/tokenchange/<id>?token=<JWT>` | portal JWT (see below) | `change` (the original's) |
//! | `/dnapi/tokenws/v1/events/<key>?since=<seq>` | Token API key | `{"seq":N,"uuid":…,"event":…,"from":…,"to":…,"at":TS,"token":{…}}` |
//!
//! Which feed carries which event to whom is `feeds.rs` (the original's recipient table).
//! Each session is `crate::feed_session`'s (heartbeats, slow consumers closed with the
//! `since=` to resume from); this module supplies the frames, and on the event feed text
//! heartbeats with the last delivered `seq`.
//!
//! As in the original, an upgrade on an unknown path under these prefixes, or with an unknown
//! key, is accepted and closed at once with no close code (clients see 1005).
//!
//! Deliberate change: the original's admin feed had no authentication at all — anyone could
//! watch any customer's token activity by its id, or everyone's with `admin`. cashgrid keeps
//! the path and the frames but needs a portal JWT (`?token=<jwt>`, or an `Authorization:
//! Bearer` header for clients that can set one): `<id>` must be the session's own customer id,
//! and only admins may name another customer or `admin`. Anything else is closed at once.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::CloseCode;
use cashgrid_actors::domain::disclosure::{snapshot_for, Viewer};
use cashgrid_actors::feed_hub::{Audience, Subscription, TokenEvents};
use cashgrid_actors::store::{EventRecord, Scope};
use serde::Serialize;
use serde_json::Value;

use super::feeds::{audience_of, Feed};
use super::route_not_found;
use super::token_api::query_map;
use crate::feed_session::{is_upgrade, parse_since, reason, unavailable, upgrade, Frames};
use crate::time::iso_millis;
use crate::AppState;

type Start = crate::feed_session::Start<TokenEvents>;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::scope("/dnapi/tokenws/v1")
                .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
                .route("/tokenchange/{key}", web::get().to(token_changes))
                .route("/events/{key}", web::get().to(events))
                .default_service(web::to(unknown)),
        )
        .service(
            web::scope("/dnapi/clearingws/v1")
                .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
                .route("/change/{key}", web::get().to(clearing_changes))
                .default_service(web::to(unknown)),
        )
        .service(
            web::scope("/dnapi/adminws/v1")
                .wrap(actix_web::middleware::from_fn(super::text::refuse_nul))
                .route("/tokenchange/{id}", web::get().to(admin_token_changes))
                .default_service(web::to(unknown)),
        );
}

/// How a session renders what it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `{"uuid":"<token uuid>"}`
    Uuid,
    /// The literal text `change`.
    Change,
    /// The full event, plus text heartbeats.
    Event,
}

async fn token_changes(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    let start = listen(&state, &key, Scope::TokenApi, Feed::TokenChange, None, Style::Uuid).await;
    upgrade(&request, body, start)
}

async fn clearing_changes(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    let start = listen(&state, &key, Scope::ClearingApi, Feed::Clearing, None, Style::Uuid).await;
    upgrade(&request, body, start)
}

async fn events(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    let start = match parse_since(query_map(&request).get("since").map(String::as_str)) {
        Ok(since) => listen(&state, &key, Scope::TokenApi, Feed::Events, since, Style::Event).await,
        Err(_) => Start::Closed(reason(CloseCode::Policy, "since must be a sequence number (an integer >= 0)".into())),
    };
    upgrade(&request, body, start)
}

/// The original's unauthenticated admin feed, now behind a portal session (module docs).
async fn admin_token_changes(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    let start = match admin_audience(&state, &request, &id).await {
        Some(audience) => match state.engine.feeds().subscribe(Feed::AdminTokenChange.spec(), audience, None) {
            Ok(subscription) => subscribed(subscription, Style::Change),
            Err(error) => unavailable(&error),
        },
        None => Start::Refused,
    };
    upgrade(&request, body, start)
}

/// Whose changes a portal session may watch under `id`: its own customer's, or as an admin
/// any customer's or (`admin`) everyone's. `None` without a valid session or for anyone else.
async fn admin_audience(state: &AppState, request: &HttpRequest, id: &str) -> Option<Audience> {
    let bearer = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let token = bearer.or_else(|| query_map(request).remove("token"))?;
    let session = state.engine.portal().verify_session(&token).await.ok()?;
    match id {
        ADMIN_FEED_ID if session.is_admin() => Some(Audience::All),
        _ => match id.parse::<i64>() {
            Ok(customer) if customer == session.id || session.is_admin() => Some(Audience::Customer(customer)),
            Ok(_) | Err(_) => None,
        },
    }
}

/// The `<id>` of the admin feed that stands for every customer.
const ADMIN_FEED_ID: &str = "admin";

/// Any other path under the WebSocket prefixes: the original accepts the upgrade and closes.
async fn unknown(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    if !is_upgrade(&request) {
        return Err(route_not_found(&state, &request).into());
    }
    upgrade(&request, body, Start::Refused)
}

/// Subscribe the customer behind a listen key of `scope` to `feed`.
async fn listen(state: &AppState, key: &str, scope: Scope, feed: Feed, since: Option<i64>, style: Style) -> Start {
    let customer = match state.engine.access().listen_key_customer(key, scope).await {
        Ok(Some(customer)) => customer,
        Ok(None) => return Start::Refused,
        Err(error) => return unavailable(&error),
    };
    // The clearing feed is per party, as the original's `clearing:<customer id>` scope.
    let audience = match feed {
        Feed::Clearing => Audience::Customer(customer.id),
        Feed::TokenChange | Feed::AdminTokenChange | Feed::Events => audience_of(&customer),
    };
    match state.engine.feeds().subscribe(feed.spec(), audience, since) {
        Ok(subscription) => subscribed(subscription, style),
        Err(error) => unavailable(&error),
    }
}

/// A session for `subscription`, rendering in `style` for its audience.
fn subscribed(subscription: Subscription<TokenEvents>, style: Style) -> Start {
    let viewer = subscription.audience().viewer();
    let frames =
        Frames { render: Box::new(move |event| frame(style, event, viewer)), heartbeats: style == Style::Event };
    Start::Subscribed(subscription, frames)
}

fn frame(style: Style, event: &EventRecord, viewer: Viewer) -> String {
    match style {
        Style::Uuid => serde_json::json!({ "uuid": event.token.to_string() }).to_string(),
        Style::Change => "change".to_owned(),
        Style::Event => event_frame(event, viewer),
    }
}

/// One state change, keys in this order.
#[derive(Serialize)]
struct EventFrame {
    seq: i64,
    uuid: String,
    event: &'static str,
    from: Option<&'static str>,
    to: &'static str,
    at: Option<String>,
    token: Value,
}

/// Snapshot fields holding epoch milliseconds, rendered as the wire's `TS`.
const SNAPSHOT_TIMES: [&str; 3] = ["created", "updated", "expires"];

/// One event as `viewer` may see it: the other party's devices are left out of the snapshot.
fn event_frame(event: &EventRecord, viewer: Viewer) -> String {
    let mut token = snapshot_for(viewer, &event.snapshot);
    if let Value::Object(fields) = &mut token {
        for name in SNAPSHOT_TIMES {
            if let Some(field) = fields.get_mut(name) {
                if let Some(text) = field.as_i64().and_then(iso_millis) {
                    *field = Value::String(text);
                }
            }
        }
    }
    let frame = EventFrame {
        seq: event.seq,
        uuid: event.token.to_string(),
        event: event.kind.as_str(),
        from: event.from.map(|state| state.as_str()),
        to: event.to.as_str(),
        at: iso_millis(event.at),
        token,
    };
    // A struct of plain fields always serialises.
    serde_json::to_string(&frame).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frames_carry_seq_kind_states_time_and_snapshot_in_order() {
        let event = EventRecord {
            seq: 7,
            token: uuid::Uuid::nil(),
            kind: cashgrid_actors::domain::TokenEventKind::Locked,
            from: Some(cashgrid_actors::domain::TokenState::Open),
            to: cashgrid_actors::domain::TokenState::Locked,
            at: 1_583_857_417_123,
            owner_id: 1,
            cash_customer_id: Some(2),
            version: 2,
            snapshot: serde_json::json!({"amount": 100, "created": 1_583_857_417_000_i64, "updated": null}),
        };
        assert_eq!(
            event_frame(&event, Viewer::Admin),
            concat!(
                r#"{"seq":7,"uuid":"00000000-0000-0000-0000-000000000000","event":"locked","from":"OPEN","#,
                r#""to":"LOCKED","at":"2020-03-10T16:23:37.123Z","#,
                r#""token":{"amount":100,"created":"2020-03-10T16:23:37.000Z","updated":null}}"#
            )
        );
        assert_eq!(frame(Style::Uuid, &event, Viewer::Admin), r#"{"uuid":"00000000-0000-0000-0000-000000000000"}"#);
    }
}
