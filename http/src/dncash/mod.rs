//! The dncash-io protocol: Token API and Cash API, wire-compatible with the original server.

mod admin_api;
mod auth;
mod cash_api;
mod clearing_api;
mod feeds;
mod handover_body;
mod headers;
mod mobile_api;
pub mod paths;
pub(crate) mod text;
mod token_api;
mod trigger_socket;
mod views;
mod websocket;

use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use cashgrid_actors::store::Scope;

use crate::error::ApiError;
use crate::AppState;

pub use auth::{authenticate, key_pair};
pub use feeds::register_initial_series;
/// `{"triggercode":T,"token":<V-locked>}`: the trigger socket's frame, the MQTT push's `data`.
pub use trigger_socket::push_frame as trigger_push_json;

/// The dncash-io document: every operation of every group, from the handlers' annotations.
pub fn document() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    let mut document = Document::openapi();
    document.merge(token_api::Document::openapi());
    document.merge(cash_api::Document::openapi());
    document.merge(mobile_api::Document::openapi());
    document.merge(clearing_api::Document::openapi());
    document.merge(admin_api::document());
    document
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "dncash.io APIs (cashgrid)", description = include_str!("openapi.md")),
    components(schemas(
        crate::error::GlobalError,
        crate::error::TextError,
        crate::openapi::schemas::TokenStateName,
        crate::openapi::schemas::TokenTypeName,
        crate::openapi::schemas::DeviceTypeName,
        crate::openapi::schemas::ScopeName,
        crate::openapi::schemas::ExpiresValue,
    )),
    tags(
        (name = "Token API", description = "Banks register phones and issue tokens (`token-api` credentials)."),
        (name = "Cash API", description = "ATMs and cash registers claim and confirm tokens, and use trigger codes (`cash-api` credentials)."),
        (name = "Mobile API", description = "Phones use trigger codes; the body carries a signature instead of credentials."),
        (name = "Clearing API", description = "Settlement rows of completed cash-outs and cash-ins (`clearing-api` credentials)."),
        (name = "Admin API", description = "The portal: login, API credentials, devices, accounts, parameters, statistics (a JWT from `POST /auth`)."),
    )
)]
struct Document;

pub fn configure(config: &mut web::ServiceConfig) {
    admin_api::configure(config);
    clearing_api::configure(config);
    mobile_api::configure(config);
    websocket::configure(config);
    config.service(
        web::scope("/dnapi/token/v1")
            .wrap(actix_web::middleware::from_fn(text::refuse_nul))
            .wrap(actix_web::middleware::from_fn(headers::express_headers))
            .configure(token_api::configure)
            .default_service(web::to(not_found_in::<TOKEN_API>)),
    );
    config.service(
        web::scope("/dnapi/cash/v1")
            .wrap(actix_web::middleware::from_fn(text::refuse_nul))
            .wrap(actix_web::middleware::from_fn(headers::express_headers))
            .configure(cash_api::configure)
            .default_service(web::to(not_found_in::<CASH_API>)),
    );
}

pub(crate) const TOKEN_API: u8 = 0;
pub(crate) const CASH_API: u8 = 1;
pub(crate) const CLEARING_API: u8 = 2;

/// A resource of an API group: its routes, the original's CORS preflight answer (`Allow`
/// header and the same list as body, no credentials needed), and the group's "Not Found" for
/// any other method (actix would answer 405; the original answers 500 "Not Found").
pub(crate) fn resource<const GROUP: u8>(path: &str, methods: &'static str) -> actix_web::Resource {
    web::resource(path)
        .route(web::route().method(actix_web::http::Method::OPTIONS).to(move || async move {
            HttpResponse::Ok()
                .insert_header((actix_web::http::header::ALLOW, methods))
                .content_type(actix_web::http::header::ContentType::html())
                .body(methods)
        }))
        .default_service(web::to(not_found_in::<GROUP>))
}

fn scope_of(group: u8) -> Scope {
    match group {
        TOKEN_API => Scope::TokenApi,
        CLEARING_API => Scope::ClearingApi,
        _ => Scope::CashApi,
    }
}

/// An unknown path or method under an API group: credentials first, then the original's
/// `500 Not Found: <url>` (404 under the `4xx` setting).
async fn not_found_in<const GROUP: u8>(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &request, scope_of(GROUP)).await?;
    Err(route_not_found(&state, &request))
}

/// The `Idempotency-Key` header of a creating request (token and device creates): 1 to 255
/// visible ASCII characters, or a 400.
pub(crate) fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(text) if cashgrid_actors::engine::idempotency::key_is_valid(text) => Ok(Some(text.to_owned())),
        _ => Err(ApiError::bad_request("Invalid Idempotency-Key: use 1 to 255 visible ASCII characters.")),
    }
}

pub fn route_not_found(state: &AppState, request: &HttpRequest) -> ApiError {
    let original = request.extensions().get::<paths::OriginalUri>().map(|original| original.0.clone());
    let uri = original.as_ref().unwrap_or_else(|| request.uri());
    let url = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    ApiError::business(state.error_status, actix_web::http::StatusCode::NOT_FOUND, format!("Not Found: {url}"))
}
