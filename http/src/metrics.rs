//! RED metrics for every HTTP request: rate and errors by route pattern, method and status,
//! and a latency histogram. Labels are route patterns, never raw paths, so ids never leak in.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::time::Instant;

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use metrics::{counter, histogram};

pub const HTTP_REQUESTS: &str = "cashgrid_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "cashgrid_http_request_duration_seconds";
/// Answers with status 500 or above: our faults, or the original's business 500s.
pub const HTTP_SERVER_ERRORS: &str = "cashgrid_http_server_errors_total";

pub struct RequestMetrics;

impl<S, B> Transform<S, ServiceRequest> for RequestMetrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestMetricsMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestMetricsMiddleware { service }))
    }
}

pub struct RequestMetricsMiddleware<S> {
    service: S,
}

/// Which protocol a route belongs to, from its pattern.
fn protocol_of(route: &str) -> &'static str {
    if route.starts_with("/dnapi") {
        "dncash"
    } else {
        "system"
    }
}

impl<S, B> Service<ServiceRequest> for RequestMetricsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let method = request.method().as_str().to_owned();
        let future = self.service.call(request);
        Box::pin(async move {
            let response = future.await?;
            let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
            let status = response.status();
            let protocol = protocol_of(&route);
            let labels = [
                ("protocol", protocol.to_owned()),
                ("route", route),
                ("method", method),
                ("status", status.as_str().to_owned()),
            ];
            counter!(HTTP_REQUESTS, &labels).increment(1);
            histogram!(HTTP_REQUEST_DURATION, &labels[..3]).record(started.elapsed().as_secs_f64());
            if status.is_server_error() {
                counter!(HTTP_SERVER_ERRORS, &labels).increment(1);
            }
            Ok(response)
        })
    }
}
