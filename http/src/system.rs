//! Operational endpoints: health, Prometheus metrics, and the original's landing texts.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .route("/", web::get().to(root))
        .route("/dnapi", web::get().to(dnapi));
}

/// 200 when the store answers, 503 otherwise: what a load balancer needs to know.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.engine.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ok" })),
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable" }))
        }
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.engine.refresh_store_gauges();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.prometheus.render())
}

async fn root() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::html()).body("dncash.io is running on /dnapi.")
}

async fn dnapi() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::html()).body("<a href=\"/dnapi/docs\">API Docs</a>")
}

/// Any path no group claims: the original's `500 Not Found: <url>` (404 under `4xx`).
pub async fn not_found(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(crate::dncash::route_not_found(&state, &request))
}
