//! Headers every dncash-io response carries: no-cache, CORS with the echoed origin, and the
//! Express signature (clients and proxies in the field were configured around them).

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};

pub struct ExpressHeaders;

impl<S, B> Transform<S, ServiceRequest> for ExpressHeaders
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = ExpressHeadersMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ExpressHeadersMiddleware { service }))
    }
}

pub struct ExpressHeadersMiddleware<S> {
    service: S,
}

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

impl<S, B> Service<ServiceRequest> for ExpressHeadersMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        // The original echoes the Origin, and writes `undefined` when there is none.
        let origin = request
            .headers()
            .get("origin")
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("undefined"));
        let future = self.service.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            for (name, value) in FIXED {
                headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            headers.insert(HeaderName::from_static("access-control-allow-origin"), origin);
            Ok(response)
        })
    }
}
