//! Webhook triggers: `[triggers.webhook]` in a workflow manifest, and the
//! signature check every delivery must pass before it may start a run or
//! deliver a signal.
//!
//! A webhook endpoint is reachable by anyone who can reach the host, so the
//! only thing that separates a real delivery from a forged one is the
//! sender's HMAC over the exact bytes of the body. The check therefore runs
//! on the raw body, before anything parses it, and compares in constant time
//! so an attacker cannot learn the expected tag a byte at a time.
//!
//! Three schemes cover the senders people actually use:
//!
//! * `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(key, body)>`.
//! * `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, an HMAC over
//!   `"{t}.{body}"`. The signed timestamp bounds how long a captured delivery
//!   can be replayed; the delivery id (see [`Verified`]) covers the rest.
//! * `hmac`: a configurable header and prefix in front of the hex digest, for
//!   everything else (and for one's own senders).
//!
//! A [`Rejection`] never carries the key, the body or the header's value:
//! its [`Rejection::reason`] is a fixed label for metrics and the 401 body.

use axum::http::{HeaderMap, HeaderName};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use std::time::Duration;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Header GitHub puts its signature in.
const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Header GitHub names each delivery in (also sent again on redelivery).
const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";
/// Header Stripe puts its timestamp and signatures in.
const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";
/// Default signature header for the generic `hmac` scheme.
const DEFAULT_HMAC_HEADER: &str = "x-signature";
/// Default `tolerance` for stripe: Stripe's own libraries use five minutes.
const DEFAULT_STRIPE_TOLERANCE: Duration = Duration::from_secs(300);
/// Longest delivery id accepted; ids are stored for replay protection.
const MAX_DELIVERY_ID_LEN: usize = 256;
/// Longest signal name accepted.
const MAX_SIGNAL_NAME_LEN: usize = 128;

/// `[triggers.webhook]`: how deliveries are authenticated and routed.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTrigger {
    /// Which sender's signature format to expect.
    pub scheme: Scheme,
    /// Name of the host secret holding the HMAC key (not the key itself).
    pub secret: String,
    /// `hmac` only: the header carrying the signature (default `X-Signature`).
    #[serde(default)]
    pub header: Option<String>,
    /// `hmac` only: text before the hex digest, e.g. `sha256=` (default empty).
    #[serde(default)]
    pub prefix: Option<String>,
    /// `stripe` only: the largest accepted `|now - t|` (default 300 s).
    #[serde(default, deserialize_with = "humantime_duration")]
    pub tolerance: Option<Duration>,
    /// Header naming the delivery, for replay protection. Defaults to
    /// `X-GitHub-Delivery` for github; none for stripe (the payload's
    /// top-level `"id"` is used) and for hmac.
    #[serde(default)]
    pub delivery_id_header: Option<String>,
    /// JSON pointer to the part of the payload that becomes the run input
    /// (default: the whole payload).
    #[serde(default)]
    pub input_pointer: Option<String>,
    /// When set, a delivery signals a waiting run instead of starting one.
    #[serde(default)]
    pub signal: Option<SignalRoute>,
}

/// The signature format a webhook sender uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// GitHub's `X-Hub-Signature-256`.
    Github,
    /// Stripe's timestamped `Stripe-Signature`.
    Stripe,
    /// A plain hex HMAC-SHA256 in a configurable header.
    Hmac,
}

/// `[triggers.webhook.signal]`: deliver a signal to the run(s) whose input
/// matches the delivery, instead of starting a run.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRoute {
    /// The signal's name, as the workflow waits for it.
    pub name: String,
    /// JSON pointer into the payload: the correlation value.
    pub correlation_pointer: String,
    /// JSON pointer into each candidate run's input where the same value
    /// must sit.
    pub input_pointer: String,
}

impl WebhookTrigger {
    /// Checks what serde cannot: names, pointers, header names, and keys that
    /// only make sense for one scheme. Errors name the key as
    /// `triggers.webhook.<key>: ...`.
    pub fn validate(&self) -> Result<(), String> {
        if !is_identifier(&self.secret) {
            return Err(format!(
                "triggers.webhook.secret: {:?} is not a valid secret name (letters, digits and _, not starting with a digit, at most 128)",
                self.secret
            ));
        }
        if self.scheme != Scheme::Hmac {
            for (key, set) in [
                ("header", self.header.is_some()),
                ("prefix", self.prefix.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "triggers.webhook.{key}: only allowed with scheme = \"hmac\""
                    ));
                }
            }
        }
        if self.scheme != Scheme::Stripe && self.tolerance.is_some() {
            return Err("triggers.webhook.tolerance: only allowed with scheme = \"stripe\"".into());
        }
        for (key, name) in [
            ("header", &self.header),
            ("delivery_id_header", &self.delivery_id_header),
        ] {
            if let Some(name) = name
                && HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                return Err(format!(
                    "triggers.webhook.{key}: {name:?} is not a valid HTTP header name"
                ));
            }
        }
        if let Some(p) = &self.input_pointer {
            check_pointer("input_pointer", p)?;
        }
        if let Some(s) = &self.signal {
            if s.name.is_empty() || s.name.len() > MAX_SIGNAL_NAME_LEN {
                return Err(format!(
                    "triggers.webhook.signal.name: must be 1 to {MAX_SIGNAL_NAME_LEN} bytes"
                ));
            }
            check_pointer("signal.correlation_pointer", &s.correlation_pointer)?;
            check_pointer("signal.input_pointer", &s.input_pointer)?;
        }
        Ok(())
    }
}

fn check_pointer(key: &str, p: &str) -> Result<(), String> {
    if p.is_empty() || p.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "triggers.webhook.{key}: {p:?} is not a JSON pointer (empty, or starting with '/')"
        ))
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn humantime_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    use serde::de::Error;
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map(Some).map_err(|e| {
        D::Error::custom(format!(
            "{s:?} is not a duration ({e}); write e.g. \"30s\", \"5m\""
        ))
    })
}

/// A delivery whose signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The sender's name for this delivery, for replay protection: from the
    /// configured (or scheme-default) header, or for stripe without one the
    /// payload's top-level `"id"`. `None` when the sender gave none.
    pub delivery_id: Option<String>,
}

/// Why a delivery was refused. Messages never include the key, the body or
/// the offending header value.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The signature header is absent.
    #[error("missing signature header")]
    MissingSignature,
    /// The signature header (or the delivery id) is not in the expected form.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The signature is well-formed but does not match.
    #[error("signature does not match")]
    BadSignature,
    /// The signature matches but its timestamp is outside the tolerance;
    /// `age_secs` is `now - t` (negative when `t` is in the future).
    #[error("signature timestamp is {age_secs} s away from now")]
    Stale {
        /// `now - t` in seconds.
        age_secs: i64,
    },
}

impl Rejection {
    /// A fixed label, for metrics and the 401 body.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingSignature => "missing_signature",
            Rejection::Malformed(_) => "malformed_signature",
            Rejection::BadSignature => "bad_signature",
            Rejection::Stale { .. } => "stale_timestamp",
        }
    }
}

/// Authenticates one delivery: checks the signature over the raw `body`
/// with `key` as `trigger.scheme` prescribes, then (stripe) the timestamp
/// against `now_unix`, then extracts the delivery id.
pub fn verify(
    trigger: &WebhookTrigger,
    key: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, Rejection> {
    match trigger.scheme {
        Scheme::Github => {
            let value = signature_header(headers, GITHUB_SIGNATURE_HEADER)?;
            let hex_sig = value
                .strip_prefix("sha256=")
                .ok_or_else(|| Rejection::Malformed("expected \"sha256=<hex>\"".into()))?;
            let tag = decode_tag(hex_sig)?;
            check_tag(key, &[body], &[tag])?;
        }
        Scheme::Stripe => {
            let value = signature_header(headers, STRIPE_SIGNATURE_HEADER)?;
            let (t_raw, t, tags) = parse_stripe(value)?;
            // Sign over the timestamp exactly as sent, as the sender did.
            check_tag(key, &[t_raw.as_bytes(), b".", body], &tags)?;
            let tolerance = trigger.tolerance.unwrap_or(DEFAULT_STRIPE_TOLERANCE);
            let age = now_unix.saturating_sub(t);
            if u128::from(age.unsigned_abs()) * 1000 > tolerance.as_millis() {
                return Err(Rejection::Stale { age_secs: age });
            }
        }
        Scheme::Hmac => {
            let name = trigger.header.as_deref().unwrap_or(DEFAULT_HMAC_HEADER);
            let value = signature_header(headers, name)?;
            let prefix = trigger.prefix.as_deref().unwrap_or("");
            let hex_sig = value.strip_prefix(prefix).ok_or_else(|| {
                Rejection::Malformed("signature lacks the configured prefix".into())
            })?;
            let tag = decode_tag(hex_sig)?;
            check_tag(key, &[body], &[tag])?;
        }
    }
    Ok(Verified {
        delivery_id: delivery_id(trigger, headers, body)?,
    })
}

/// The single value of the signature header `name`, as text.
fn signature_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Rejection> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Rejection::Malformed("configured signature header name is invalid".into()))?;
    let mut values = headers.get_all(&name).iter();
    let value = values.next().ok_or(Rejection::MissingSignature)?;
    if values.next().is_some() {
        return Err(Rejection::Malformed(format!("more than one {name} header")));
    }
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| Rejection::Malformed(format!("{name} is not visible ASCII")))
}

/// Decodes a hex HMAC-SHA256 tag (either case).
fn decode_tag(hex_sig: &str) -> Result<Vec<u8>, Rejection> {
    let tag =
        hex::decode(hex_sig).map_err(|_| Rejection::Malformed("signature is not hex".into()))?;
    if tag.len() != 32 {
        return Err(Rejection::Malformed(
            "signature is not a 32-byte HMAC-SHA256".into(),
        ));
    }
    Ok(tag)
}

/// Accepts when any of `tags` equals HMAC-SHA256(key, concat(parts)),
/// comparing each in constant time and always comparing all of them.
fn check_tag(key: &[u8], parts: &[&[u8]], tags: &[Vec<u8>]) -> Result<(), Rejection> {
    let mut mac = new_mac(key);
    for part in parts {
        mac.update(part);
    }
    let expected = mac.finalize().into_bytes();
    let matched = tags.iter().fold(subtle::Choice::from(0), |acc, tag| {
        acc | expected.as_slice().ct_eq(tag)
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(Rejection::BadSignature)
    }
}

/// Splits `t=<unix>,v1=<hex>,...` into the raw and parsed timestamp and the
/// decoded `v1` tags; other schemes (`v0`, ...) are ignored.
fn parse_stripe(value: &str) -> Result<(&str, i64, Vec<Vec<u8>>), Rejection> {
    let mut t = None;
    let mut tags = Vec::new();
    for item in value.split(',') {
        let (k, v) = item
            .trim()
            .split_once('=')
            .ok_or_else(|| Rejection::Malformed("expected comma-separated key=value".into()))?;
        match k {
            "t" => {
                if t.is_some() {
                    return Err(Rejection::Malformed("more than one t=".into()));
                }
                let ok = !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit());
                let parsed = v
                    .parse::<i64>()
                    .ok()
                    .filter(|_| ok)
                    .ok_or_else(|| Rejection::Malformed("t= is not a unix timestamp".into()))?;
                t = Some((v, parsed));
            }
            "v1" => tags.push(decode_tag(v)?),
            _ => {}
        }
    }
    let (t_raw, t) = t.ok_or_else(|| Rejection::Malformed("no t= timestamp".into()))?;
    if tags.is_empty() {
        return Err(Rejection::Malformed("no v1= signature".into()));
    }
    Ok((t_raw, t, tags))
}

/// The delivery id, from the configured or scheme-default header, or (stripe
/// without a header) the payload's top-level string `"id"`.
fn delivery_id(
    trigger: &WebhookTrigger,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, Rejection> {
    let header = trigger
        .delivery_id_header
        .as_deref()
        .or(match trigger.scheme {
            Scheme::Github => Some(GITHUB_DELIVERY_HEADER),
            Scheme::Stripe | Scheme::Hmac => None,
        });
    let id = match header {
        Some(name) => {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Rejection::Malformed("configured delivery id header name is invalid".into())
            })?;
            match headers.get(&name) {
                None => None,
                Some(v) => Some(
                    v.to_str()
                        .map_err(|_| Rejection::Malformed(format!("{name} is not visible ASCII")))?
                        .to_owned(),
                ),
            }
        }
        None if trigger.scheme == Scheme::Stripe => stripe_event_id(body),
        None => None,
    };
    if let Some(id) = &id {
        if id.is_empty() {
            return Err(Rejection::Malformed("delivery id is empty".into()));
        }
        if id.len() > MAX_DELIVERY_ID_LEN {
            return Err(Rejection::Malformed(format!(
                "delivery id is longer than {MAX_DELIVERY_ID_LEN} bytes"
            )));
        }
        if id.chars().any(char::is_control) {
            return Err(Rejection::Malformed(
                "delivery id contains control characters".into(),
            ));
        }
    }
    Ok(id)
}

/// The top-level string `"id"` of a JSON object body, if there is one.
fn stripe_event_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Event {
        id: Option<serde_json::Value>,
    }
    // A derived struct also deserializes from a JSON array (`["evt_1"]`
    // would yield id "evt_1"), so insist on an object first.
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    if *first != b'{' {
        return None;
    }
    match serde_json::from_slice::<Event>(body).ok()?.id? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = new_mac(key);
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The `X-Hub-Signature-256` value GitHub would send: `sha256=<hex>`.
pub fn sign_github(key: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(key, &[body]))
}

/// The full `Stripe-Signature` value Stripe would send at time `t`:
/// `t=<t>,v1=<hex>`.
pub fn sign_stripe(key: &[u8], body: &[u8], t: i64) -> String {
    let t = t.to_string();
    format!("t={t},v1={}", hmac_hex(key, &[t.as_bytes(), b".", body]))
}

/// A signature for the `hmac` scheme: `prefix` followed by lower-case hex.
pub fn sign_hmac(key: &[u8], body: &[u8], prefix: &str) -> String {
    format!("{prefix}{}", hmac_hex(key, &[body]))
}

/// The value at JSON `pointer` in `payload` (the whole payload when the
/// pointer is `None` or empty); `None` when nothing is there.
pub fn extract(payload: &serde_json::Value, pointer: Option<&str>) -> Option<serde_json::Value> {
    match pointer {
        None | Some("") => Some(payload.clone()),
        Some(p) => payload.pointer(p).cloned(),
    }
}

mod delivery;
pub use delivery::{HookAction, HookReceipt, WebhookError};

#[cfg(test)]
mod tests;
