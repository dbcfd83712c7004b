//! Operational endpoints: health, Prometheus metrics, and the original's landing texts.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .route("/", web::get().to(root))
        .route("/dnapi", web::get().to(dnapi));
}

/// The health answer: `ok` or `unavailable`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// 200 when the store answers, 503 otherwise: what a load balancer needs to know.
#[utoipa::path(
    get,
    path = "/health",
    tag = "Operations",
    responses(
        (status = 200, description = "The store answers: `{\"status\":\"ok\"}`.", body = Health),
        (status = 503, description = "The store does not answer: `{\"status\":\"unavailable\"}`.", body = Health),
    )
)]
pub(crate) async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.engine.ping().await {
        Ok(()) => HttpResponse::Ok().json(Health { status: "ok" }),
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            HttpResponse::ServiceUnavailable().json(Health { status: "unavailable" })
        }
    }
}

/// Prometheus text format; every metric is listed in docs/METRICS.md.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Operations",
    responses((status = 200, description = "Every metric in Prometheus' text format (docs/METRICS.md).", content_type = "text/plain", body = String))
)]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.engine.refresh_store_gauges();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.prometheus.render())
}

#[utoipa::path(
    get,
    path = "/",
    tag = "Operations",
    responses((status = 200, description = "The original's landing text.", content_type = "text/html", body = String, example = "dncash.io is running on /dnapi."))
)]
pub(crate) async fn root() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::html()).body("dncash.io is running on /dnapi.")
}

#[utoipa::path(
    get,
    path = "/dnapi",
    tag = "Operations",
    responses((status = 200, description = "A link to the documentation.", content_type = "text/html", body = String, example = "<a href=\"/dnapi/docs\">API Docs</a>"))
)]
pub(crate) async fn dnapi() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::html()).body("<a href=\"/dnapi/docs\">API Docs</a>")
}

/// Any path no group claims: the original's `500 Not Found: <url>` (404 under `4xx`).
pub async fn not_found(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(crate::dncash::route_not_found(&state, &request))
}
