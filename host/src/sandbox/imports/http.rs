//! `runway:workflow/http`: outbound requests the host makes for the guest.
//!
//! The order of a fresh `send` is the contract:
//! 1. check the request's shape (a pure function of it: not journaled);
//! 2. refuse it if the run's HTTP budgets are spent;
//! 3. put in the secrets its header placeholders name, and an
//!    `Idempotency-Key` (run id and journal position) on a request that may
//!    not be repeated safely;
//! 4. make everything recorded so far durable (the commit rule);
//! 5. let the egress policy decide and send (redirects checked hop by
//!    hop, retries for requests that may be repeated), interruptible by a
//!    cancel;
//! 6. mask secret values the response echoes, write the `http_call` event
//!    and the journal entry, and submit them as one commit before the
//!    guest goes on (every later effect that leaves the host waits for it).
//!
//! A replay answers from the journal: nothing is sent again.

use super::failure;
use crate::egress::policy::Decision;
use crate::egress::{HttpError, Request as Outbound};
use crate::host::scheduler::LiveRun;
use crate::host::services::HostServices;
use crate::sandbox::bindings::http::{Host as HttpImport, Request, Response};
use crate::sandbox::bindings::types::Failure;
use crate::sandbox::effect::{Commit, Effects, OnReplay, Performed, Recorded};
use crate::sandbox::fault::RunFault;
use crate::sandbox::journal::Call;
use crate::sandbox::state::{HttpUsage, RunContext, RunState};
use crate::types::{BudgetKind, CallFailure, EventBody, FailureCode};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wasmtime::component::HasData;

const SEND: &str = "runway:workflow/http.send";
const MAX_URL: usize = 8 << 10;
const MAX_HEADERS: usize = 100;
const MAX_HEADER_NAME: usize = 256;
const MAX_HEADER_VALUE: usize = 8 << 10;
/// Largest request body a guest may send.
const MAX_BODY: usize = 16 << 20;
const PLACEHOLDER: &str = "{{secret:";

/// A journaled result.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok {
        status: u16,
        headers: Vec<(String, String)>,
        /// Base64: the journal is JSON.
        body: String,
    },
    Err(CallFailure),
}

/// What `http` sees of a run.
pub(super) struct HttpView<'a> {
    run: &'a RunContext,
    effects: &'a Effects,
    host: &'a HostServices,
    live: &'a LiveRun,
    usage: &'a mut HttpUsage,
}

pub(super) struct Http;

impl HasData for Http {
    type Data<'a> = HttpView<'a>;
}

pub(super) fn view(s: &mut RunState) -> HttpView<'_> {
    HttpView {
        run: &s.run,
        effects: &s.effects,
        host: &s.host,
        live: &s.live,
        usage: &mut s.http,
    }
}

impl HttpImport for HttpView<'_> {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, Failure>> {
        let (method, url) = match check(&req) {
            Ok(x) => x,
            Err(problem) => return Ok(Err(failure(FailureCode::HttpInvalidRequest, problem))),
        };
        let budget = self.run.budget;
        if self.usage.calls >= budget.max_http_calls {
            return Err(self.effects.fail(RunFault::Budget {
                budget: BudgetKind::MaxHttpCalls,
                limit: budget.max_http_calls,
                used: self.usage.calls + 1,
            }));
        }
        let sent_bytes = req.body.as_ref().map_or(0, Vec::len) as u64;
        if self.usage.bytes + sent_bytes > budget.max_http_bytes {
            return Err(self.effects.fail(RunFault::Budget {
                budget: BudgetKind::MaxHttpBytes,
                limit: budget.max_http_bytes,
                used: self.usage.bytes + sent_bytes,
            }));
        }
        let headers_text = serde_json::to_vec(&req.headers).unwrap_or_default();
        let timeout = req.timeout_millis.unwrap_or(0).to_le_bytes();
        let body = req.body.as_deref().unwrap_or_default();
        let call = Call::new(
            SEND,
            &[
                method.as_str().as_bytes(),
                req.url.as_bytes(),
                &headers_text,
                body,
                &timeout,
            ],
        );
        let replay = OnReplay::GuestEvent { output_bytes: 0 };
        let answer = self
            .effects
            .effect(call, replay, || self.send_fresh(&req, method, url))
            .await?;
        let result = match answer {
            Answer::Ok {
                status,
                headers,
                body,
            } => Ok(Response {
                status,
                headers,
                body: base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap_or_default(),
            }),
            Answer::Err(e) => Err(Failure {
                code: e.code,
                message: e.message,
            }),
        };
        // Counted the same on replay: the journal holds the response.
        self.usage.calls += 1;
        let received = result.as_ref().map_or(0, |r| r.body.len() as u64);
        self.usage.bytes += sent_bytes + received;
        if self.usage.bytes > budget.max_http_bytes {
            return Err(self.effects.fail(RunFault::Budget {
                budget: BudgetKind::MaxHttpBytes,
                limit: budget.max_http_bytes,
                used: self.usage.bytes,
            }));
        }
        Ok(result)
    }
}

impl HttpView<'_> {
    /// Steps 3–6 above.
    async fn send_fresh(
        &self,
        req: &Request,
        method: reqwest::Method,
        url: url::Url,
    ) -> wasmtime::Result<Performed<Answer>> {
        let started = std::time::Instant::now();
        let shown_url = self.shown(&url);
        let refused = |e: HttpError, decision: Decision| {
            let failure = CallFailure {
                code: e.code().as_str().to_owned(),
                message: self.effects.mask(&e.to_string()),
            };
            crate::metrics::http_call(url.host_str().unwrap_or(""), failure.code.as_str());
            let event = EventBody::HttpCall {
                method: method.as_str().to_owned(),
                url: shown_url.clone(),
                status: None,
                bytes_sent: 0,
                bytes_received: 0,
                duration_ms: started.elapsed().as_millis() as u64,
                attempts: 0,
                egress: decision,
                error: Some(failure.clone()),
            };
            answered(Answer::Err(failure), event)
        };
        // Secrets go in only where the policy lets the request out.
        let manifest_rules = self.run.manifest.http.rules();
        let decision = self
            .host
            .egress
            .decide(&manifest_rules, method.as_str(), &url);
        if let Decision::Denied { reason } = &decision {
            return Ok(refused(HttpError::Denied(reason.clone()), decision));
        }
        let mut secrets = Vec::new();
        let mut headers = Vec::with_capacity(req.headers.len() + 1);
        for (name, value) in &req.headers {
            let (value, used) = match self.substitute(value) {
                Ok(x) => x,
                Err(Substitution::Undeclared(n)) => {
                    let e = HttpError::InvalidRequest(format!(
                        "the header {name} names the secret {n:?}, which the manifest does not declare"
                    ));
                    return Ok(refused(e, decision));
                }
                Err(Substitution::Missing(n)) => {
                    return Err(self.effects.fail(RunFault::SecretMissing(n)));
                }
            };
            headers.push((name.clone(), value, !used.is_empty()));
            secrets.extend(used);
        }
        let repeatable = matches!(method.as_str(), "GET" | "HEAD");
        if !repeatable
            && !req
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"))
        {
            // The same in every execution: the run and the call's position.
            let key = format!("{}-{}", self.run.id, self.effects.calls() + 1);
            headers.push(("Idempotency-Key".to_owned(), key, false));
        }
        for s in &secrets {
            self.effects.add_secret(s);
        }
        self.effects.commit_before_leaving().await?;

        let outbound = Outbound {
            method: method.clone(),
            url: url.clone(),
            headers,
            body: req.body.clone().unwrap_or_default(),
            timeout: req.timeout_millis.map(Duration::from_millis),
        };
        let sent = {
            let deadline = tokio::time::Instant::from_std(self.run.deadline());
            let send = self.host.egress.send(&manifest_rules, outbound, deadline);
            tokio::pin!(send);
            loop {
                tokio::select! {
                    r = &mut send => break r,
                    () = self.live.wake.notified() => {
                        if self.live.cancelled() {
                            return Err(self.effects.fail(self.live.stop_fault()));
                        }
                    }
                }
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let (answer, status, received, error) = match sent.result {
            Ok(mut r) => {
                // A response that echoes a secret shows the mask, the same
                // on the first execution and on replay.
                for (_, v) in &mut r.headers {
                    *v = self.effects.mask(v);
                }
                for s in &secrets {
                    r.body = mask_bytes(&r.body, s.as_bytes());
                }
                let received = r.body.len() as u64;
                let status = r.status;
                let answer = Answer::Ok {
                    status: r.status,
                    headers: r.headers,
                    body: base64::engine::general_purpose::STANDARD.encode(&r.body),
                };
                (answer, Some(status), received, None)
            }
            Err(e) => {
                let failure = CallFailure {
                    code: e.code().as_str().to_owned(),
                    message: self.effects.mask(&e.to_string()),
                };
                (Answer::Err(failure.clone()), None, 0, Some(failure))
            }
        };
        let outcome = match (&status, &error) {
            (Some(s), _) => format!("{}xx", s / 100),
            (None, Some(f)) => f.code.clone(),
            (None, None) => String::new(),
        };
        crate::metrics::http_call(url.host_str().unwrap_or(""), &outcome);
        let event = EventBody::HttpCall {
            method: method.as_str().to_owned(),
            url: shown_url,
            status,
            bytes_sent: sent.bytes_sent,
            bytes_received: received,
            duration_ms,
            attempts: sent.attempts,
            egress: sent.decision,
            error,
        };
        Ok(answered(answer, event))
    }

    /// A header value with its `{{secret:NAME}}` placeholders filled in,
    /// and the values it used.
    fn substitute(&self, value: &str) -> Result<(String, Vec<String>), Substitution> {
        let mut out = String::with_capacity(value.len());
        let mut used = Vec::new();
        let mut rest = value;
        while let Some(at) = rest.find(PLACEHOLDER) {
            out.push_str(&rest[..at]);
            let after = &rest[at + PLACEHOLDER.len()..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[at..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            if !self.run.manifest.secrets.iter().any(|s| s == name) {
                return Err(Substitution::Undeclared(name.to_owned()));
            }
            let Some(secret) = self.host.secrets.get(name) else {
                return Err(Substitution::Missing(name.to_owned()));
            };
            out.push_str(&secret);
            used.push(secret);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok((out, used))
    }

    /// The URL as the history shows it: secret values masked, and the
    /// values of query parameters named like a declared secret.
    fn shown(&self, url: &url::Url) -> String {
        let secrets = &self.run.manifest.secrets;
        let mut shown = url.clone();
        if url.query().is_some()
            && url
                .query_pairs()
                .any(|(k, _)| secrets.iter().any(|s| s.eq_ignore_ascii_case(&k)))
        {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let hidden = secrets.iter().any(|s| s.eq_ignore_ascii_case(&k));
                    let v = if hidden {
                        "********".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.effects.mask(shown.as_str())
    }
}

enum Substitution {
    Undeclared(String),
    Missing(String),
}

/// The journaled answer with its event, submitted as one commit.
fn answered(answer: Answer, event: EventBody) -> Performed<Answer> {
    Performed::quiet(answer)
        .event(Recorded::Guest {
            body: event,
            output_bytes: 0,
        })
        .commit(Commit::Submit, Vec::new())
}

/// `bytes` with every occurrence of `secret` replaced by the mask.
fn mask_bytes(bytes: &[u8], secret: &[u8]) -> Vec<u8> {
    if secret.is_empty() || bytes.len() < secret.len() {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(secret) {
            out.extend_from_slice(b"********");
            i += secret.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The request's method and URL, or why the host will not send it.
fn check(req: &Request) -> Result<(reqwest::Method, url::Url), String> {
    let m = &req.method;
    if m.is_empty() || m.len() > 16 || !m.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{:?} is not an HTTP method (upper case)",
            truncated(m)
        ));
    }
    let method = reqwest::Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string())?;
    if req.url.len() > MAX_URL {
        return Err(format!("the URL is over {MAX_URL} bytes"));
    }
    let url = url::Url::parse(&req.url).map_err(|e| format!("the URL does not parse: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "the scheme {:?} is not http or https",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "credentials in the URL are not sent; use a header with a secret placeholder".into(),
        );
    }
    if req.headers.len() > MAX_HEADERS {
        return Err(format!("at most {MAX_HEADERS} headers"));
    }
    for (name, value) in &req.headers {
        if name.is_empty()
            || name.len() > MAX_HEADER_NAME
            || reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            return Err(format!("{:?} is not a header name", truncated(name)));
        }
        if value.len() > MAX_HEADER_VALUE
            || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
        {
            return Err(format!(
                "the value of {name} is over {MAX_HEADER_VALUE} bytes or holds a line break"
            ));
        }
        if ["host", "content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            return Err(format!("the host sets the {name} header itself"));
        }
    }
    if req.body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
        return Err(format!("the body is over {MAX_BODY} bytes"));
    }
    Ok((method, url))
}

fn truncated(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_secrets_are_masked_in_bytes() {
        assert_eq!(mask_bytes(b"a tok tok b", b"tok"), b"a ******** ******** b");
        assert_eq!(mask_bytes(b"abc", b""), b"abc");
        assert_eq!(mask_bytes(b"ab", b"abc"), b"ab");
    }

    #[test]
    fn malformed_requests_are_refused_before_anything_is_journaled() {
        let req = |method: &str, url: &str, headers: Vec<(&str, &str)>| Request {
            method: method.into(),
            url: url.into(),
            headers: headers
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            body: None,
            timeout_millis: None,
        };
        assert!(check(&req("GET", "https://example.com/x", vec![("accept", "a")])).is_ok());
        for bad in [
            req("get", "https://example.com", vec![]),
            req("GET", "ftp://example.com", vec![]),
            req("GET", "https://u:p@example.com", vec![]),
            req("GET", "not a url", vec![]),
            req("GET", "https://example.com", vec![("bad name", "x")]),
            req("GET", "https://example.com", vec![("x", "a\r\nb: c")]),
            req("GET", "https://example.com", vec![("Host", "other")]),
        ] {
            assert!(check(&bad).is_err(), "{} {}", bad.method, bad.url);
        }
    }
}
