//! Outbound HTTP on a guest's behalf: the policy ([`policy`]), a client
//! whose every connection goes to an address the policy checked (its DNS
//! resolver refuses restricted addresses, so no rebinding gap), redirects
//! followed and checked hop by hop, timeouts, a response cap and retries.

pub mod policy;

use crate::retry::{self, Attempt, Retries};
use policy::{Decision, HostRules, ManifestRules, Rule};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// `[egress]` in the host config. Nothing is reachable by default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Rules (`[scheme://]host[:port]`, `*.domain`, `*`) workflows may reach,
    /// each further limited by the manifest's `[http] allow`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Rules no workflow reaches, whatever allows them.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Restricted address ranges (private, loopback, link-local) workflows
    /// may reach all the same, as CIDRs (`127.0.0.0/8`).
    #[serde(default)]
    pub allow_private: Vec<String>,
    /// Redirects followed per request (each hop checked again); 0 hands
    /// the guest the redirect itself.
    #[serde(default = "default_redirects")]
    pub max_redirects: u32,
    /// A request's timeout unless it asks for another.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::manifest::duration_required"
    )]
    pub timeout: Duration,
    /// The longest timeout a request may ask for.
    #[serde(
        default = "default_max_timeout",
        deserialize_with = "crate::manifest::duration_required"
    )]
    pub max_timeout: Duration,
    /// Largest response body handed to a guest.
    #[serde(
        default = "default_max_response",
        deserialize_with = "crate::manifest::bytes_required"
    )]
    pub max_response_bytes: u64,
    /// Retries of a request that may be repeated (GET, HEAD, PUT, DELETE,
    /// OPTIONS, or one with an `Idempotency-Key`), on connection errors,
    /// 429 and 5xx, honouring `Retry-After`.
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(
        default = "default_backoff",
        deserialize_with = "crate::manifest::duration_required"
    )]
    pub backoff: Duration,
    #[serde(
        default = "default_max_backoff",
        deserialize_with = "crate::manifest::duration_required"
    )]
    pub max_backoff: Duration,
}

fn default_redirects() -> u32 {
    5
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_max_response() -> u64 {
    16 << 20
}
fn default_retries() -> u32 {
    2
}
fn default_backoff() -> Duration {
    Duration::from_millis(250)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(10)
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            allow_private: Vec::new(),
            max_redirects: default_redirects(),
            timeout: default_timeout(),
            max_timeout: default_max_timeout(),
            max_response_bytes: default_max_response(),
            retries: default_retries(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("egress denied: {0}")]
    Denied(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the response is over {0} bytes")]
    TooLarge(u64),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl HttpError {
    /// The failure code the guest sees.
    pub fn code(&self) -> crate::types::FailureCode {
        use crate::types::FailureCode as F;
        match self {
            HttpError::Denied(_) => F::EgressDenied,
            HttpError::Timeout(_) => F::HttpTimeout,
            HttpError::Connect(_) => F::HttpConnect,
            HttpError::TooLarge(_) => F::HttpTooLarge,
            HttpError::InvalidRequest(_) => F::HttpInvalidRequest,
        }
    }
}

/// A request as it leaves the host (secrets substituted).
pub struct Request {
    pub method: reqwest::Method,
    pub url: url::Url,
    /// Name, value, and whether the value carries a secret (such a header
    /// is not sent on to another host by a redirect).
    pub headers: Vec<(String, String, bool)>,
    pub body: Vec<u8>,
    pub timeout: Option<Duration>,
}

/// A response as the guest sees it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What sending came to, for the run's history.
pub struct Sent {
    pub result: Result<Response, HttpError>,
    /// The decision for the first hop, or for the hop that was denied.
    pub decision: Decision,
    pub attempts: u32,
    pub bytes_sent: u64,
}

/// The host's outbound HTTP client and the operator's rules.
pub struct Egress {
    rules: Arc<HostRules>,
    config: EgressConfig,
    client: reqwest::Client,
    /// A test harness's scripted responses, asked instead of the network
    /// (after the policy's decision).
    pub(crate) script: Option<Arc<crate::testing::Script>>,
}

impl Egress {
    pub fn new(config: EgressConfig) -> Result<Egress, String> {
        let parse = |list: &[String]| {
            list.iter()
                .map(|r| Rule::parse(r))
                .collect::<Result<Vec<_>, _>>()
        };
        let allow_private = config
            .allow_private
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!(
                            "egress allow_private {n:?}: not a CIDR (127.0.0.0/8) or an address"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rules = Arc::new(HostRules {
            allow: parse(&config.allow)?,
            deny: parse(&config.deny)?,
            allow_private,
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Guarded(rules.clone())))
            .user_agent(concat!("runway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Egress {
            rules,
            config,
            client,
            script: None,
        })
    }

    /// The policy's decision for `method` to `url`, before any address is
    /// looked up.
    pub fn decide(&self, manifest: &ManifestRules, method: &str, url: &url::Url) -> Decision {
        let d = policy::decide(&self.rules, manifest, method, url);
        if !d.is_allowed() {
            return d;
        }
        // An address in the URL itself is checked now (a name is checked
        // when it is resolved, before the connection).
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.address(d, IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.address(d, IpAddr::V6(ip)),
            _ => d,
        }
    }

    /// Why the operator's `[egress]` keeps the host from `url` (a server
    /// the operator configured, where no manifest rule applies), if it
    /// does: its rules, then every address its name resolves to.
    pub async fn refuses(&self, url: &url::Url) -> Option<String> {
        let any = ManifestRules {
            allow: ["http://*:*", "https://*:*"]
                .iter()
                .filter_map(|r| Rule::parse(r).ok())
                .collect(),
            methods: Vec::new(),
        };
        if let Decision::Denied { reason } = self.decide(&any, "POST", url) {
            return Some(reason);
        }
        let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => addrs
                .map(|a| self.rules.address_allowed(a.ip()))
                .find_map(Result::err),
            Err(e) => Some(format!("{host} does not resolve: {e}")),
        }
    }

    fn address(&self, d: Decision, ip: IpAddr) -> Decision {
        match self.rules.address_allowed(ip) {
            Ok(()) => d,
            Err(reason) => Decision::Denied { reason },
        }
    }

    /// The timeout a request gets: its own (at most `max_timeout`) or the
    /// default.
    pub fn timeout(&self, asked: Option<Duration>) -> Duration {
        asked
            .unwrap_or(self.config.timeout)
            .min(self.config.max_timeout)
    }

    pub fn max_response_bytes(&self) -> u64 {
        self.config.max_response_bytes
    }

    /// Sends `req`, following redirects the policy allows, retrying a
    /// repeatable request on connection errors, 429 and 5xx. A 429 or 5xx
    /// left after the retries is the response, not a failure.
    pub async fn send(&self, manifest: &ManifestRules, req: Request, deadline: Instant) -> Sent {
        let method = req.method.as_str().to_owned();
        let decision = self.decide(manifest, &method, &req.url);
        let bytes_sent = req.body.len() as u64
            + req
                .headers
                .iter()
                .map(|(n, v, _)| (n.len() + v.len() + 4) as u64)
                .sum::<u64>();
        if let Decision::Denied { reason } = &decision {
            return Sent {
                result: Err(HttpError::Denied(reason.clone())),
                decision,
                attempts: 0,
                bytes_sent: 0,
            };
        }
        if let Some(script) = &self.script {
            return Sent {
                result: script.http(&req),
                decision,
                attempts: 1,
                bytes_sent,
            };
        }
        let repeatable = matches!(
            method.as_str(),
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS"
        ) || req
            .headers
            .iter()
            .any(|(n, _, _)| n.eq_ignore_ascii_case("idempotency-key"));
        let retries = Retries {
            retries: if repeatable { self.config.retries } else { 0 },
            backoff: self.config.backoff,
            max_backoff: self.config.max_backoff,
        };
        // Per attempt; the retries end at the run's deadline.
        let timeout = self.timeout(req.timeout);
        let denied_hop = parking_lot::Mutex::new(None);
        let tried = retry::run(retries, deadline, "an HTTP request", |_| async {
            let until = deadline.min(Instant::now() + timeout);
            self.follow(manifest, &req, until, timeout, &denied_hop)
                .await
        })
        .await;
        let (result, attempts) = match tried {
            Ok((r, n)) => (Ok(r), n),
            Err((Failed::Response(r), n)) => (Ok(r), n),
            // Refused before anything was sent.
            Err((Failed::Error(e @ HttpError::Denied(_)), _)) => (Err(e), 0),
            Err((Failed::Error(e), n)) => (Err(e), n),
        };
        Sent {
            result,
            decision: denied_hop.into_inner().unwrap_or(decision),
            attempts,
            bytes_sent,
        }
    }

    /// One attempt: the request and the redirects after it.
    async fn follow(
        &self,
        manifest: &ManifestRules,
        req: &Request,
        deadline: Instant,
        timeout: Duration,
        denied_hop: &parking_lot::Mutex<Option<Decision>>,
    ) -> Result<Response, Attempt<Failed>> {
        let fail = |e: HttpError| Attempt::Fail(Failed::Error(e));
        let mut method = req.method.clone();
        let mut url = req.url.clone();
        let mut body = Some(req.body.clone());
        let mut with_secrets = true;
        let mut hops = 0;
        loop {
            let mut builder = self.client.request(method.clone(), url.clone());
            for (name, value, secret) in &req.headers {
                if *secret && !with_secrets {
                    continue;
                }
                builder = builder.header(name.as_str(), value.as_str());
            }
            // The call's span (with traces on), so the service joins the run's trace.
            let mut trace = reqwest::header::HeaderMap::new();
            crate::telemetry::inject(&mut trace);
            builder = builder.headers(trace);
            if let Some(b) = &body
                && !b.is_empty()
            {
                builder = builder.body(b.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let sent = tokio::time::timeout(left, builder.send()).await;
            let res = match sent {
                Err(_) => return Err(fail(HttpError::Timeout(timeout))),
                Ok(Ok(res)) => res,
                Ok(Err(e)) => {
                    if let Some(denied) = address_denied(&e) {
                        *denied_hop.lock() = Some(Decision::Denied {
                            reason: denied.clone(),
                        });
                        return Err(fail(HttpError::Denied(denied)));
                    }
                    if e.is_timeout() {
                        return Err(fail(HttpError::Timeout(timeout)));
                    }
                    if e.is_builder() {
                        return Err(fail(HttpError::InvalidRequest(chain(&e))));
                    }
                    return Err(Attempt::Retry {
                        error: Failed::Error(HttpError::Connect(chain(&e))),
                        after: None,
                    });
                }
            };
            let status = res.status();
            if status.is_redirection()
                && hops < self.config.max_redirects
                && let Some(next) = res
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
            {
                hops += 1;
                let d = self.decide(manifest, method.as_str(), &next);
                if let Decision::Denied { reason } = &d {
                    let reason = format!("redirect {hops} to {next}: {reason}");
                    *denied_hop.lock() = Some(Decision::Denied {
                        reason: reason.clone(),
                    });
                    return Err(fail(HttpError::Denied(reason)));
                }
                // A secret goes to the host it was written for, not on.
                if next.host_str() != url.host_str()
                    || next.port_or_known_default() != url.port_or_known_default()
                {
                    with_secrets = false;
                }
                // 303, and 301/302 after a POST, become a GET without body.
                let code = status.as_u16();
                if code == 303 || (matches!(code, 301 | 302) && method == reqwest::Method::POST) {
                    method = reqwest::Method::GET;
                    body = None;
                }
                url = next;
                continue;
            }
            let retry_after = retry::retry_after(res.headers());
            let response = self.read(res, deadline, timeout).await.map_err(fail)?;
            if status.as_u16() == 429 || status.is_server_error() {
                return Err(Attempt::Retry {
                    error: Failed::Response(response),
                    after: retry_after,
                });
            }
            return Ok(response);
        }
    }

    /// Reads a response, at most `max_response_bytes` of body.
    async fn read(
        &self,
        mut res: reqwest::Response,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let cap = self.max_response_bytes();
        if res.content_length().is_some_and(|n| n > cap) {
            return Err(HttpError::TooLarge(cap));
        }
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, res.chunk()).await {
                Err(_) => return Err(HttpError::Timeout(timeout)),
                Ok(Ok(Some(chunk))) => {
                    if body.len() as u64 + chunk.len() as u64 > cap {
                        return Err(HttpError::TooLarge(cap));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) if e.is_timeout() => return Err(HttpError::Timeout(timeout)),
                Ok(Err(e)) => {
                    return Err(HttpError::Connect(format!(
                        "the response broke off: {}",
                        chain(&e)
                    )));
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// An attempt's outcome that is not the answer: a response worth retrying
/// (the answer if the retries run out), or an error.
enum Failed {
    Response(Response),
    Error(HttpError),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Response(r) => write!(f, "status {}", r.status),
            Failed::Error(e) => e.fmt(f),
        }
    }
}

/// The DNS resolver of the egress client: a name is looked up, and refused
/// if any address it resolves to is restricted; the connection goes to
/// the addresses checked here.
struct Guarded(Arc<HostRules>);

/// A name that resolved to a restricted address.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AddressDenied(String);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                if let Err(reason) = rules.address_allowed(a.ip()) {
                    return Err(
                        Box::new(AddressDenied(format!("{host} resolves to {reason}")))
                            as Box<dyn std::error::Error + Send + Sync>,
                    );
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolver's refusal inside a client error, if that is what it is.
fn address_denied(e: &reqwest::Error) -> Option<String> {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(d) = c.downcast_ref::<AddressDenied>() {
            return Some(d.0.clone());
        }
        cur = c.source();
    }
    None
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
