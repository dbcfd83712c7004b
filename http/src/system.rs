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

/// The answer to an unknown path outside `/dnapi`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "Not Found"}))]
pub struct NotFound {
    #[schema(example = "Not Found")]
    error: &'static str,
}

/// `404 {"error":"Not Found"}` in every error mode: the error-status mode and the
/// `Not Found: <url>` text are the original's, for its namespace only.
pub(crate) fn unknown_path() -> HttpResponse {
    HttpResponse::NotFound().json(NotFound { error: "Not Found" })
}

/// Any path no route claims. Under `/dnapi` the original's `500 Not Found: <url>` (404 under
/// `4xx`), which its clients rely on; anywhere else a plain 404.
pub async fn not_found(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    if crate::dncash::paths::is_dncash(request.path()) {
        Err(crate::dncash::route_not_found(&state, &request))
    } else {
        Ok(unknown_path())
    }
}
