//! The dncash-io protocol: Token API and Cash API, wire-compatible with the original server.

mod auth;
mod cash_api;
mod headers;
mod token_api;
mod views;

use actix_web::{web, HttpRequest, HttpResponse};
use cashgrid_actors::store::Scope;

use crate::error::ApiError;
use crate::AppState;

pub use auth::authenticate;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/dnapi/token/v1")
            .wrap(headers::ExpressHeaders)
            .configure(token_api::configure)
            .default_service(web::to(not_found_in::<TOKEN_API>)),
    );
    config.service(
        web::scope("/dnapi/cash/v1")
            .wrap(headers::ExpressHeaders)
            .configure(cash_api::configure)
            .default_service(web::to(not_found_in::<CASH_API>)),
    );
}

const TOKEN_API: u8 = 0;
const CASH_API: u8 = 1;

fn scope_of(group: u8) -> Scope {
    if group == TOKEN_API {
        Scope::TokenApi
    } else {
        Scope::CashApi
    }
}

/// An unknown path or method under an API group: credentials first, then the original's
/// `500 Not Found: <url>` (404 under the `4xx` setting).
async fn not_found_in<const GROUP: u8>(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if request.method() == actix_web::http::Method::OPTIONS {
        return Ok(HttpResponse::Ok().finish());
    }
    authenticate(&state, &request, scope_of(GROUP)).await?;
    Err(route_not_found(&state, &request))
}

pub fn route_not_found(state: &AppState, request: &HttpRequest) -> ApiError {
    let url = request.uri().path_and_query().map_or_else(|| request.path().to_owned(), |pq| pq.as_str().to_owned());
    ApiError::business(state.error_status, actix_web::http::StatusCode::NOT_FOUND, format!("Not Found: {url}"))
}
