//! RED metrics for every HTTP request: rate and errors by route pattern, method and status,
//! and a latency histogram. Labels are route patterns, never raw paths, so ids never leak in.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use metrics::{counter, histogram};

pub use cashgrid_actors::metrics::{HTTP_REQUESTS, HTTP_REQUEST_DURATION, HTTP_SERVER_ERRORS};

/// Which protocol a route belongs to, from its pattern.
fn protocol_of(route: &str) -> &'static str {
    if route.starts_with("/dnapi") {
        "dncash"
    } else {
        "system"
    }
}

pub async fn record_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let origin = request
        .app_data::<actix_web::web::Data<crate::AppState>>()
        .map(|state| crate::client_origin::of(request.request(), &state.trusted_proxies));
    let response = next.call(request).await?;
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status();
    let labels = [
        ("protocol", protocol_of(&route).to_owned()),
        ("route", route),
        ("method", method),
        ("status", status.as_str().to_owned()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_REQUEST_DURATION, &labels[..3]).record(started.elapsed().as_secs_f64());
    if status.is_server_error() {
        counter!(HTTP_SERVER_ERRORS, &labels).increment(1);
    }
    if let Some(origin) = origin {
        // The access log (RUST_LOG=cashgrid_http=debug): the path is the route pattern, so
        // no token uuid or radiocode reaches the log.
        tracing::debug!(
            client = ?origin.address,
            scheme = origin.scheme,
            method = %labels[2].1,
            route = %labels[1].1,
            status = status.as_u16(),
            seconds = started.elapsed().as_secs_f64(),
            "request"
        );
    }
    Ok(response)
}
