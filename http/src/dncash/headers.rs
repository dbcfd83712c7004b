//! Headers every dncash-io response carries: no-cache, CORS with the echoed origin, and the
//! Express signature (clients and proxies in the field were configured around them).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

const FIXED: [(&str, &str); 8] = [
    ("x-powered-by", "Express"),
    ("surrogate-control", "no-store"),
    ("cache-control", "no-store, no-cache, must-revalidate, proxy-revalidate"),
    ("pragma", "no-cache"),
    ("expires", "0"),
    ("access-control-allow-credentials", "true"),
    (
        "access-control-allow-headers",
        "Origin, X-Requested-With, Content-Type, Accept, Authorization, DN-API-KEY, DN-API-SECRET",
    ),
    ("access-control-allow-methods", "GET, PUT, POST, DELETE, OPTIONS"),
];

pub async fn express_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The original echoes the Origin, and writes `undefined` when there is none.
    let origin = request.headers().get("origin").cloned().unwrap_or_else(|| HeaderValue::from_static("undefined"));
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    for (name, value) in FIXED {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    headers.insert(HeaderName::from_static("access-control-allow-origin"), origin);
    Ok(response)
}
