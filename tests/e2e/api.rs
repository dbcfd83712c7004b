//! A thin HTTP client for the dncash-io APIs: every call returns a [`Reply`] holding the
//! status, the raw text and the parsed JSON, so assertions can look at all three.

use std::time::{Duration, Instant};

use awc::http::{Method, StatusCode};
use serde_json::Value;

use crate::wire;

/// Generous: tests run on 2 shared cores next to other builds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body a test reads (metrics pages, long token lists).
const RESPONSE_LIMIT_BYTES: usize = 16 * 1024 * 1024;
/// Longest a test waits for a metric to show what the server must have done.
const METRIC_WAIT: Duration = Duration::from_secs(10);
/// Pause between two scrapes while waiting for a metric.
const METRIC_POLL: Duration = Duration::from_millis(20);

/// The value of the sample `name{labels}` (labels exactly as rendered) in a Prometheus scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// DN-API-KEY / DN-API-SECRET of one `customer_access` row.
#[derive(Debug, Clone)]
pub struct Creds {
    pub apikey: String,
    pub apisecret: String,
}

/// What a request carries as its body.
pub enum Body {
    None,
    Json(Value),
    /// Bytes sent verbatim with this Content-Type.
    Raw {
        content_type: &'static str,
        bytes: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub content_type: Option<String>,
    /// Response headers, names in lower case, in received order.
    pub headers: Vec<(String, String)>,
    pub text: String,
    /// The body parsed as JSON; `Null` when it is empty or not JSON (see `text`).
    pub json: Value,
}

impl Reply {
    /// Top-level keys of the JSON object body in wire order.
    pub fn keys(&self) -> Vec<String> {
        wire::object_keys(&self.text)
    }

    /// Key order of every object of a JSON array body.
    pub fn element_keys(&self) -> Vec<Vec<String>> {
        wire::array_object_keys(&self.text)
    }

    /// The first value of a response header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }

    pub fn describe(&self) -> String {
        format!("{} {} -> {} {}", self.method, self.path, self.status.as_u16(), self.text)
    }

    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(self.status.as_u16(), expected, "unexpected status: {}", self.describe());
        self
    }

    /// 200 with a JSON body; returns the body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        self.assert_status(200);
        assert!(!self.json.is_null(), "200 without a JSON body: {}", self.describe());
        &self.json
    }

    /// The JSON array of a 200 list reply.
    #[track_caller]
    pub fn list(&self) -> Vec<Value> {
        match self.ok() {
            Value::Array(items) => items.clone(),
            other => panic!("expected a JSON array, got {other}: {}", self.describe()),
        }
    }
}

pub struct Api {
    client: awc::Client,
    base_url: String,
}

impl Api {
    pub fn new(base_url: &str) -> Self {
        let client = awc::Client::builder().timeout(REQUEST_TIMEOUT).finish();
        Self { client, base_url: base_url.to_owned() }
    }

    pub async fn request(&self, method: Method, path: &str, creds: Option<&Creds>, body: Body) -> Reply {
        let headers = match creds {
            Some(creds) => vec![("DN-API-KEY", creds.apikey.as_str()), ("DN-API-SECRET", creds.apisecret.as_str())],
            None => Vec::new(),
        };
        self.request_with_headers(method, path, &headers, body).await
    }

    pub async fn request_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Reply {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.client.request(method.clone(), &url);
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let sent = match body {
            Body::None => request.send().await,
            Body::Json(value) => request.send_json(&value).await,
            Body::Raw { content_type, bytes } => {
                request.insert_header(("Content-Type", content_type)).send_body(bytes).await
            }
        };
        let mut response = sent.unwrap_or_else(|error| panic!("{method} {url} failed: {error}"));
        let status = response.status();
        let content_type =
            response.headers().get("content-type").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let bytes = response
            .body()
            .limit(RESPONSE_LIMIT_BYTES)
            .await
            .unwrap_or_else(|error| panic!("{method} {url}: reading the body failed: {error}"));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { method, path: path.to_owned(), status, content_type, headers, text, json }
    }

    pub async fn get(&self, path: &str, creds: &Creds) -> Reply {
        self.request(Method::GET, path, Some(creds), Body::None).await
    }

    pub async fn get_anonymous(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, Body::None).await
    }

    pub async fn post(&self, path: &str, creds: &Creds, body: Value) -> Reply {
        self.request(Method::POST, path, Some(creds), Body::Json(body)).await
    }

    pub async fn put(&self, path: &str, creds: &Creds, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(creds), Body::Json(body)).await
    }

    pub async fn delete(&self, path: &str, creds: &Creds) -> Reply {
        self.request(Method::DELETE, path, Some(creds), Body::None).await
    }

    /// Scrape `/metrics` until the sample `series` is `expected`: a wait for something the
    /// server did, not for time. Fails the test, saying `why`, after 10 s.
    pub async fn wait_for_metric(&self, series: &str, expected: f64, why: &str) {
        let deadline = Instant::now() + METRIC_WAIT;
        loop {
            let scrape = self.get_anonymous("/metrics").await.text;
            if sample(&scrape, series) == Some(expected) {
                return;
            }
            assert!(Instant::now() < deadline, "{why}: {series} is not {expected} after {METRIC_WAIT:?}:\n{scrape}");
            actix_web::rt::time::sleep(METRIC_POLL).await;
        }
    }
}
