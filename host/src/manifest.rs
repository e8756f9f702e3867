//! `runway.toml`: what a workflow declares about itself.
//!
//! Parsing is strict: an unknown key or a bad value is an error that names the
//! key path (`budget.max_memory: ...`), so a typo never silently falls back to
//! a default.

use crate::budget::{BudgetOverrides, FuelLimit};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// A parsed, validated manifest.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub slug: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Names of host secrets this workflow may read.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Models this workflow may call: aliases (`default`), `provider/model`
    /// or `provider/*`. Anything else fails with `MODEL_NOT_ALLOWED`.
    #[serde(default)]
    pub models: Vec<String>,
    /// MCP servers the host configured that this workflow may use: `NAME`
    /// (every tool) or `NAME/TOOL` (that tool). Anything else fails with
    /// `MCP_SERVER_NOT_ALLOWED`.
    #[serde(default)]
    pub mcp: Vec<String>,
    #[serde(default)]
    pub budget: BudgetSection,
    /// The guest's whole environment (WASI `environ`); never secrets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What starts runs besides API calls: a webhook, cron schedules.
    #[serde(default)]
    pub triggers: Triggers,
    /// Outbound HTTP this workflow may make (further limited by the host's
    /// `[egress]`).
    #[serde(default)]
    pub http: HttpSection,
    /// Runs of this workflow executing at once (parked runs do not count);
    /// more wait their turn. None: only the host's limit.
    #[serde(default)]
    pub max_concurrent_runs: Option<usize>,
    /// `[input.schema]`: a JSON Schema every input must follow, checked
    /// before a run is created (422 `INVALID_INPUT` with the path).
    #[serde(default)]
    pub input: Option<Contract>,
    /// `[output.schema]`: the output's JSON Schema, published in the API
    /// description.
    #[serde(default)]
    pub output: Option<Contract>,
    /// `[retry]`: a failed run is tried again (none: never).
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
}

/// `[retry]`: how often, how soon and after which failures a failed run is
/// tried again. An attempt keeps the journal's answered calls up to the
/// failed call it retries (no model call or HTTP request before it is made
/// again); a failure no call explains starts the attempt from the top.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles for each one after.
    #[serde(
        default = "RetryPolicy::default_backoff",
        deserialize_with = "duration_required"
    )]
    pub backoff: Duration,
    /// The longest wait between attempts.
    #[serde(
        default = "RetryPolicy::default_max_backoff",
        deserialize_with = "duration_required"
    )]
    pub max_backoff: Duration,
    /// The failures retried: a run's error code (`INTERNAL`, `TRAP`,
    /// `PROGRAM_ERROR`) or the code of the failure the workflow returned
    /// (`PROVIDER_TIMEOUT`, `HTTP_CONNECT`, its own).
    #[serde(default = "RetryPolicy::default_on")]
    pub on: Vec<String>,
}

/// Failures a retry cannot fix: never retried.
pub const NEVER_RETRIED: [&str; 3] = ["BUDGET_EXCEEDED", "NONDETERMINISM", "CANCELLED"];

impl RetryPolicy {
    fn default_backoff() -> Duration {
        Duration::from_secs(1)
    }

    fn default_max_backoff() -> Duration {
        Duration::from_secs(300)
    }

    /// The host's failures and the outside's transient ones.
    fn default_on() -> Vec<String> {
        [
            "INTERNAL",
            "PROVIDER_ERROR",
            "PROVIDER_TIMEOUT",
            "RATE_LIMITED",
            "HTTP_TIMEOUT",
            "HTTP_CONNECT",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Whether `code` is retried.
    pub fn retries(&self, code: &str) -> bool {
        !NEVER_RETRIED.contains(&code) && self.on.iter().any(|c| c == code)
    }

    /// The wait before attempt `next` (2 or more).
    pub fn wait_before(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(30);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// A JSON Schema a value must follow.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub schema: serde_json::Value,
}

impl Contract {
    /// Checks `value`; the first error, with where it is (a JSON pointer).
    pub fn check(&self, value: &serde_json::Value) -> Result<(), String> {
        let validator = jsonschema::validator_for(&self.schema)
            .map_err(|e| format!("the schema is invalid: {e}"))?;
        validator.validate(value).map_err(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            format!("at {at}: {e}")
        })
    }
}

/// `[http]`: hosts (`[scheme://]host[:port]`, `*.domain`) and, optionally,
/// methods this workflow's requests may use.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
}

impl HttpSection {
    /// The rules, as the egress policy reads them (checked when the
    /// manifest was parsed).
    pub fn rules(&self) -> crate::egress::policy::ManifestRules {
        crate::egress::policy::ManifestRules {
            allow: self
                .allow
                .iter()
                .filter_map(|r| crate::egress::policy::Rule::parse(r).ok())
                .collect(),
            methods: self
                .methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
        }
    }
}

/// `[triggers]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    #[serde(default)]
    pub webhook: Option<crate::triggers::webhook::WebhookTrigger>,
    #[serde(default)]
    pub cron: Vec<CronTrigger>,
}

/// `[[triggers.cron]]`: a schedule (5 or 6 fields, UTC) and the input of
/// the runs it starts.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    pub schedule: String,
    #[serde(default)]
    pub input: Option<serde_json::Value>,
}

/// `[budget]`: every key optional; the host's defaults fill the rest.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    #[serde(default, deserialize_with = "fuel")]
    pub max_fuel: Option<FuelLimit>,
    /// Time executing (waits not counted).
    #[serde(default, deserialize_with = "duration")]
    pub max_duration: Option<Duration>,
    /// Wall-clock time from the first start, waits included.
    #[serde(default, deserialize_with = "duration")]
    pub max_lifetime: Option<Duration>,
    #[serde(default, deserialize_with = "bytes")]
    pub max_memory: Option<u64>,
    #[serde(default)]
    pub max_events: Option<u64>,
    #[serde(default, deserialize_with = "bytes")]
    pub max_output_bytes: Option<u64>,
    #[serde(default, deserialize_with = "bytes")]
    pub max_artifact_bytes: Option<u64>,
    /// Child runs one run may start (0 forbids children).
    #[serde(default)]
    pub max_children: Option<u64>,
    /// Journal entries one run may record.
    #[serde(default)]
    pub max_journal_entries: Option<u64>,
    /// Bytes of journal one run may record.
    #[serde(default, deserialize_with = "bytes")]
    pub max_journal_bytes: Option<u64>,
    /// Runs in the tree this run is the root of (ignored for a child: the
    /// root's figure binds the tree).
    #[serde(default)]
    pub max_tree_runs: Option<u64>,
    /// Model tokens (input plus output) of the run and its descendants.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Model cost in US dollars of the run and its descendants.
    #[serde(default)]
    pub max_usd: Option<f64>,
    /// Outbound HTTP requests one run may make.
    #[serde(default)]
    pub max_http_calls: Option<u64>,
    /// Bytes of HTTP bodies one run may send and receive.
    #[serde(default, deserialize_with = "bytes")]
    pub max_http_bytes: Option<u64>,
}

impl BudgetSection {
    pub fn overrides(&self) -> BudgetOverrides {
        BudgetOverrides {
            max_fuel: self.max_fuel,
            max_duration: self.max_duration,
            max_lifetime: self.max_lifetime,
            max_memory: self.max_memory,
            max_events: self.max_events,
            max_output_bytes: self.max_output_bytes,
            max_artifact_bytes: self.max_artifact_bytes,
            max_children: self.max_children,
            max_journal_entries: self.max_journal_entries,
            max_journal_bytes: self.max_journal_bytes,
            max_tree_runs: self.max_tree_runs,
            max_tokens: self.max_tokens,
            max_usd: self.max_usd.map(crate::types::Usd::from_dollars),
            max_http_calls: self.max_http_calls,
            max_http_bytes: self.max_http_bytes,
        }
    }
}

/// A manifest was rejected. The message names the key path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("manifest: {0}")]
pub struct ManifestError(pub String);

impl Manifest {
    /// Parses and validates manifest TOML.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ManifestError(one_line(&e)))?;
        let manifest: Manifest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = one_line(e.inner());
            if path == "." || path.is_empty() {
                ManifestError(inner)
            } else {
                ManifestError(format!("{path}: {inner}"))
            }
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        validate_slug(&self.slug).map_err(|m| ManifestError(format!("slug: {m}")))?;
        for (key, contract) in [("input", &self.input), ("output", &self.output)] {
            if let Some(c) = contract {
                jsonschema::validator_for(&c.schema)
                    .map_err(|e| ManifestError(format!("{key}.schema: not a JSON Schema: {e}")))?;
            }
        }
        for (i, g) in self.mcp.iter().enumerate() {
            let ok = match g.split_once('/') {
                None => is_mcp_name(g),
                Some((server, tool)) => is_mcp_name(server) && is_mcp_name(tool),
            };
            if !ok {
                return Err(ManifestError(format!(
                    "mcp[{i}]: {g:?} is not SERVER or SERVER/TOOL (letters, digits, _, - and ., at most 64 each)"
                )));
            }
        }
        if let Some(r) = &self.retry {
            if !(1..=100).contains(&r.max_attempts) {
                return Err(ManifestError(
                    "retry.max_attempts: from 1 (the first attempt only) to 100".into(),
                ));
            }
            for (i, code) in r.on.iter().enumerate() {
                if NEVER_RETRIED.contains(&code.as_str()) {
                    return Err(ManifestError(format!(
                        "retry.on[{i}]: {code} is never retried (another attempt ends the same way)"
                    )));
                }
                let ok = !code.is_empty()
                    && code.len() <= 64
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                if !ok {
                    return Err(ManifestError(format!(
                        "retry.on[{i}]: {code:?} is not a failure code (like HTTP_CONNECT)"
                    )));
                }
            }
        }
        if self.max_concurrent_runs == Some(0) {
            return Err(ManifestError(
                "max_concurrent_runs: at least 1 (leave it out for no limit of the workflow's own)"
                    .into(),
            ));
        }
        for (i, r) in self.http.allow.iter().enumerate() {
            crate::egress::policy::Rule::parse(r)
                .map_err(|m| ManifestError(format!("http.allow[{i}]: {m}")))?;
        }
        for (i, m) in self.http.methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(ManifestError(format!(
                    "http.methods[{i}]: {m:?} is not an HTTP method"
                )));
            }
        }
        if let Some(d) = &self.description
            && d.len() > 1024
        {
            return Err(ManifestError("description: longer than 1024 bytes".into()));
        }
        for (i, name) in self.secrets.iter().enumerate() {
            if !is_identifier(name) {
                return Err(ManifestError(format!(
                    "secrets[{i}]: {name:?} is not a valid secret name (letters, digits and _, not starting with a digit, at most 128)"
                )));
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            let ok = !m.is_empty()
                && m.len() <= 256
                && !m.chars().any(|c| c.is_whitespace() || c.is_control())
                && m.split_once('/')
                    .is_none_or(|(p, model)| !p.is_empty() && !model.is_empty());
            if !ok {
                return Err(ManifestError(format!(
                    "models[{i}]: {m:?} is not an alias, provider/model or provider/*"
                )));
            }
        }
        for (k, v) in &self.env {
            if !is_identifier(k) {
                return Err(ManifestError(format!(
                    "env.{k}: not a valid variable name (letters, digits and _, not starting with a digit)"
                )));
            }
            if v.len() > 32 * 1024 || v.contains('\0') {
                return Err(ManifestError(format!(
                    "env.{k}: value must be at most 32 KiB without NUL"
                )));
            }
        }
        if let Some(w) = &self.triggers.webhook {
            w.validate().map_err(ManifestError)?;
        }
        for (i, c) in self.triggers.cron.iter().enumerate() {
            crate::triggers::cron::parse(&c.schedule)
                .map_err(|e| ManifestError(format!("triggers.cron[{i}].schedule: {e}")))?;
        }
        let b = &self.budget;
        for (key, v) in [
            ("max_memory", b.max_memory),
            ("max_events", b.max_events),
            ("max_output_bytes", b.max_output_bytes),
            ("max_journal_entries", b.max_journal_entries),
            ("max_journal_bytes", b.max_journal_bytes),
            ("max_tree_runs", b.max_tree_runs),
        ] {
            if v == Some(0) {
                return Err(ManifestError(format!(
                    "budget.{key}: must be greater than 0"
                )));
            }
        }
        if b.max_duration == Some(Duration::ZERO) {
            return Err(ManifestError(
                "budget.max_duration: must be greater than 0".into(),
            ));
        }
        if b.max_lifetime == Some(Duration::ZERO) {
            return Err(ManifestError(
                "budget.max_lifetime: must be greater than 0".into(),
            ));
        }
        if let Some(usd) = b.max_usd
            && (!usd.is_finite() || usd <= 0.0)
        {
            return Err(ManifestError(
                "budget.max_usd: must be a number of dollars greater than 0".into(),
            ));
        }
        if b.max_tokens == Some(0) {
            return Err(ManifestError(
                "budget.max_tokens: must be greater than 0".into(),
            ));
        }
        if b.max_fuel == Some(FuelLimit::Limited(0)) {
            return Err(ManifestError(
                "budget.max_fuel: must be greater than 0 (or \"unlimited\")".into(),
            ));
        }
        Ok(())
    }
}

/// Slugs are URL- and file-safe: `[a-z0-9][a-z0-9-]*`, at most 63 bytes.
pub fn validate_slug(slug: &str) -> Result<(), String> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{slug:?} is not a valid slug (lower-case letters, digits and '-', not starting with '-', at most 63)"
        ))
    }
}

/// A server or tool name in `mcp` grants: letters, digits, `_`, `-` and
/// `.`, at most 64.
pub(crate) fn is_mcp_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Manifest {
    /// Whether the manifest grants `tool` of MCP server `server` (`None`:
    /// any of its tools, as listing needs).
    pub fn grants_mcp(&self, server: &str, tool: Option<&str>) -> bool {
        self.mcp.iter().any(|g| match g.split_once('/') {
            None => g == server,
            Some((s, t)) => s == server && tool.is_none_or(|tool| tool == t),
        })
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
}

fn fuel<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FuelLimit>, D::Error> {
    use serde::de::Error;
    match IntOrString::deserialize(d)? {
        IntOrString::Int(n) if n >= 0 => Ok(Some(FuelLimit::Limited(n as u64))),
        IntOrString::Str(s) if s == "unlimited" => Ok(Some(FuelLimit::Unlimited)),
        _ => Err(D::Error::custom(
            "expected a non-negative integer or \"unlimited\"",
        )),
    }
}

/// [`duration`] for a field with a default (`#[serde(default = …)]`).
pub(crate) fn duration_required<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error;
    duration(d)?.ok_or_else(|| D::Error::custom("expected a duration"))
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    use serde::de::Error;
    match IntOrString::deserialize(d)? {
        IntOrString::Str(s) => humantime::parse_duration(&s).map(Some).map_err(|e| {
            D::Error::custom(format!(
                "{s:?} is not a duration ({e}); write e.g. \"500ms\", \"30s\", \"5m\""
            ))
        }),
        IntOrString::Int(_) => Err(D::Error::custom(
            "expected a duration string such as \"30s\" or \"500ms\"",
        )),
    }
}

/// [`bytes`] for a field with a default.
pub(crate) fn bytes_required<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    bytes(d)?.ok_or_else(|| D::Error::custom("expected a size"))
}

fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match IntOrString::deserialize(d)? {
        IntOrString::Int(n) if n >= 0 => Ok(Some(n as u64)),
        IntOrString::Int(_) => Err(D::Error::custom("expected a non-negative size")),
        IntOrString::Str(s) => s
            .parse::<bytesize::ByteSize>()
            .map(|b| Some(b.as_u64()))
            .map_err(|e| {
                D::Error::custom(format!(
                    "{s:?} is not a size ({e}); write e.g. \"64 MiB\" or a number of bytes"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_manifest_parses() {
        let m = Manifest::parse(
            r#"
            slug = "report"
            description = "Weekly report"
            secrets = ["REPORT_TOKEN"]
            models = ["default", "openai/gpt-4o", "local/*"]
            [budget]
            max_tokens = 5000
            max_usd = 0.25
            max_fuel = "unlimited"
            max_duration = "1500ms"
            max_memory = "64 MiB"
            max_events = 100
            max_output_bytes = 4096
            max_artifact_bytes = "1 MiB"
            [env]
            MODE = "fast"
            "#,
        )
        .unwrap();
        assert_eq!(m.slug, "report");
        assert_eq!(m.budget.max_fuel, Some(FuelLimit::Unlimited));
        assert_eq!(m.models, ["default", "openai/gpt-4o", "local/*"]);
        let o = m.budget.overrides();
        assert_eq!(o.max_tokens, Some(5000));
        assert_eq!(o.max_usd, Some(crate::types::Usd(250_000_000)));
        assert_eq!(m.budget.max_duration, Some(Duration::from_millis(1500)));
        assert_eq!(m.budget.max_memory, Some(64 << 20));
        assert_eq!(m.budget.max_artifact_bytes, Some(1 << 20));
        assert_eq!(m.env["MODE"], "fast");
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let e = Manifest::parse("slug = \"a\"\ncolour = 1").unwrap_err();
        assert!(e.0.contains("colour"), "{e}");
        let e = Manifest::parse("slug = \"a\"\n[budget]\nmax_fuell = 1").unwrap_err();
        assert!(e.0.starts_with("budget"), "{e}");
        assert!(e.0.contains("max_fuell"), "{e}");
    }

    #[test]
    fn bad_values_name_their_path() {
        let e = Manifest::parse("slug = \"a\"\n[budget]\nmax_memory = \"lots\"").unwrap_err();
        assert!(e.0.starts_with("budget.max_memory:"), "{e}");
        let e = Manifest::parse("slug = \"a\"\n[budget]\nmax_duration = 5").unwrap_err();
        assert!(e.0.starts_with("budget.max_duration:"), "{e}");
        let e = Manifest::parse("slug = \"a\"\n[budget]\nmax_events = -1").unwrap_err();
        assert!(e.0.starts_with("budget.max_events:"), "{e}");
        let e = Manifest::parse("slug = \"Bad Slug\"").unwrap_err();
        assert!(e.0.starts_with("slug:"), "{e}");
        let e = Manifest::parse("slug = \"a\"\nmodels = [\"/x\"]").unwrap_err();
        assert!(e.0.starts_with("models[0]:"), "{e}");
        let e = Manifest::parse("slug = \"a\"\n[budget]\nmax_usd = -1").unwrap_err();
        assert!(e.0.starts_with("budget.max_usd:"), "{e}");
        let e = Manifest::parse("slug = \"a\"\nsecrets = [\"a-b\"]").unwrap_err();
        assert!(e.0.starts_with("secrets[0]:"), "{e}");
        let e = Manifest::parse("description = \"x\"").unwrap_err();
        assert!(e.0.contains("slug"), "{e}");
        let e = Manifest::parse("slug = ").unwrap_err();
        assert!(!e.0.is_empty());
    }
}
