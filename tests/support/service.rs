//! A loopback HTTP service that records every request it gets: the world a
//! workflow's outbound requests reach in tests. Routes:
//!
//! - `/echo`: 200, `{"method","path","headers":{..},"body"}` of the request;
//! - `/slow?ms=N`: answers 200 after N ms;
//! - `/big?bytes=N`: N bytes of body;
//! - `/limited?times=K`: 429 with `Retry-After: 1` the first K times, then 200;
//! - `/fail`: 500;
//! - `/redirect?to=URL`: 302 to URL;
//! - `/repos/{owner}/{repo}/pulls/{n}`: a diff;
//! - `/repos/{owner}/{repo}/issues/{n}/comments` (POST): 201 with the new
//!   comment's id and URL;
//! - anything else: 200 `ok`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// One request the service received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    limited: Mutex<HashMap<String, u32>>,
}

/// A running service; dropping it stops the server.
pub struct Service {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub port: u16,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// The diff `/repos/.../pulls/N` answers.
pub const DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1 @@\n-fn a() {}\n+fn b() {}\n";

impl Service {
    pub async fn start() -> Service {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the service");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("test-service".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let server = tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                    let _ = rx.await;
                    server.abort();
                });
            })
            .unwrap();
        Service {
            base: format!("http://{addr}"),
            port: addr.port(),
            shared,
            _shutdown: tx,
        }
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .count()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let seen = Seen {
        method: method.as_str().to_owned(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    shared.seen.lock().push(seen.clone());
    let p = uri.path();
    if p == "/echo" {
        let v = serde_json::json!({
            "method": seen.method,
            "path": seen.path,
            "headers": seen.headers,
            "body": String::from_utf8_lossy(&seen.body),
        });
        let echoed: Vec<(String, String)> = seen
            .headers
            .iter()
            .filter(|(n, _)| n.as_str() == "authorization")
            .map(|(_, v)| ("x-echo-authorization".to_owned(), v.clone()))
            .collect();
        let mut res = axum::Json(v).into_response();
        for (n, v) in echoed {
            res.headers_mut().insert(
                axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return res;
    }
    if p == "/slow" {
        let ms = q.get("ms").and_then(|m| m.parse().ok()).unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return "slow".into_response();
    }
    if p == "/big" {
        let n: usize = q.get("bytes").and_then(|m| m.parse().ok()).unwrap_or(0);
        return vec![b'x'; n].into_response();
    }
    if p == "/limited" {
        let times: u32 = q.get("times").and_then(|m| m.parse().ok()).unwrap_or(1);
        let mut l = shared.limited.lock();
        let n = l.entry(path.clone()).or_default();
        *n += 1;
        if *n <= times {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response();
        }
        return "ok".into_response();
    }
    if p == "/fail" {
        return (StatusCode::INTERNAL_SERVER_ERROR, "broken").into_response();
    }
    if p == "/redirect" {
        let to = q.get("to").cloned().unwrap_or_default();
        return (StatusCode::FOUND, [("location", to)], "").into_response();
    }
    if p.starts_with("/repos/") && p.contains("/pulls/") {
        return ([("content-type", "text/x-diff")], DIFF).into_response();
    }
    if p.starts_with("/repos/") && p.ends_with("/comments") && method == Method::POST {
        let n = shared.seen.lock().len();
        let v = serde_json::json!({ "id": 1000 + n, "html_url": format!("https://github.example/c/{n}") });
        return (StatusCode::CREATED, axum::Json(v)).into_response();
    }
    "ok".into_response()
}
