//! Language models on the host: the `[models]` configuration, resolution of
//! model references, and provider calls with retries, timeouts and a
//! concurrency cap per provider.
//!
//! ```toml
//! [models.aliases]
//! default = "openai/gpt-4o-mini"
//! fast = "local/llama3"
//!
//! [models.providers.openai]
//! kind = "openai"                 # Chat Completions; or "anthropic" (Messages)
//! base_url = "https://api.openai.com/v1"
//! key_secret = "OPENAI_API_KEY"   # a host secret; never shown to workflows
//! input_per_million = 0.15        # US dollars per million tokens
//! output_per_million = 0.60
//! timeout = "60s"                 # per attempt
//! retries = 3                     # on 429 and 5xx, honouring Retry-After
//! concurrency = 16                # requests in flight to this provider
//!
//! [models.providers.openai.models."gpt-4o"]   # per-model overrides
//! input_per_million = 2.5
//! output_per_million = 10.0
//! context_window = 128000
//! ```
//!
//! The key is read from the host's secrets for each call and never leaves
//! this module except in the request's auth header: anything a provider
//! sends back is masked before it is kept anywhere.

mod anthropic;
mod openai;
mod provider;

use crate::types::FailureCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use provider::Generated;

/// A provider's wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions, or any compatible server (vLLM, Ollama, ...).
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    fn default_base_url(self) -> &'static str {
        match self {
            Self::Openai => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
        }
    }
}

/// US dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rates {
    pub input_per_million: f64,
    pub output_per_million: f64,
    pub cached_input_per_million: f64,
}

/// Token counts of one call. `input` includes `cached`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
}

impl Rates {
    /// What `t` costs, in nano-dollars (exact sums; rounded per call).
    pub fn cost_nanos(&self, t: Tokens) -> u64 {
        let cached = t.cached.min(t.input);
        let nanos = (t.input - cached) as f64 * self.input_per_million * 1e3
            + cached as f64 * self.cached_input_per_million * 1e3
            + t.output as f64 * self.output_per_million * 1e3;
        nanos.round().max(0.0) as u64
    }
}

/// What a model reference resolves to. Holds no key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolved {
    /// `provider/model`.
    pub reference: String,
    pub provider: String,
    #[schema(value_type = String)]
    pub kind: ProviderKind,
    pub model: String,
    pub base_url: String,
    pub context_window: Option<u64>,
    pub rates: Rates,
}

/// Who says what in a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// An assistant turn's calls of tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// A user turn that answers tool calls (sent as `role: tool` messages
    /// or `tool_result` blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_results: Vec<ToolResult>,
}

impl Message {
    /// A message of plain text.
    pub fn text(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_results: Vec::new(),
        }
    }
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// The JSON Schema of its arguments (an object).
    pub parameters: serde_json::Value,
}

/// A call of a tool the model asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id of the call; its result names it.
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// What a tool call came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub call_id: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Named(String),
}

/// A generation request, as the guest made it (model resolved separately).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
    pub json_schema: Option<serde_json::Value>,
    /// Tools the model may call (`models.chat`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// Why a model call failed; each is a code the guest can match on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("model {0:?} is not in the workflow's allowed models")]
    NotAllowed(String),
    #[error("model {0:?} is not configured on this host")]
    Unknown(String),
    #[error("provider {provider} answered {status}: {message}")]
    Provider {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("provider {provider} did not answer within {after:?}")]
    Timeout { provider: String, after: Duration },
    #[error("provider {provider} is still rate limiting after {attempts} attempts: {message}")]
    RateLimited {
        provider: String,
        attempts: u32,
        message: String,
    },
    #[error("provider {provider} sent an answer the host cannot use: {message}")]
    InvalidResponse { provider: String, message: String },
    #[error("{0}")]
    InvalidRequest(String),
}

impl ModelError {
    pub fn code(&self) -> &'static str {
        self.failure_code().as_str()
    }

    /// What the guest is told.
    pub fn failure_code(&self) -> FailureCode {
        match self {
            Self::NotAllowed(_) => FailureCode::ModelNotAllowed,
            Self::Unknown(_) => FailureCode::ModelUnknown,
            Self::Provider { .. } => FailureCode::ProviderError,
            Self::Timeout { .. } => FailureCode::ProviderTimeout,
            Self::RateLimited { .. } => FailureCode::RateLimited,
            Self::InvalidResponse { .. } => FailureCode::InvalidResponse,
            Self::InvalidRequest(_) => FailureCode::InvalidRequest,
        }
    }
}

/// `[models]` in `runway-host.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// Alias -> `provider/model`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// `[models.providers.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the host secret holding the API key; none for servers
    /// without auth (a local vLLM or Ollama).
    #[serde(default)]
    pub key_secret: Option<String>,
    #[serde(default)]
    pub input_per_million: f64,
    #[serde(default)]
    pub output_per_million: f64,
    /// Defaults to `input_per_million`.
    #[serde(default)]
    pub cached_input_per_million: Option<f64>,
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Per attempt.
    #[serde(default, deserialize_with = "crate::manifest::duration")]
    pub timeout: Option<Duration>,
    /// Retries after the first attempt, on 429, 5xx and connection errors.
    #[serde(default)]
    pub retries: Option<u32>,
    /// First backoff; doubles per retry, with jitter.
    #[serde(default, deserialize_with = "crate::manifest::duration")]
    pub backoff: Option<Duration>,
    #[serde(default, deserialize_with = "crate::manifest::duration")]
    pub max_backoff: Option<Duration>,
    /// Requests in flight to this provider at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Output tokens asked for when a request does not say.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
}

/// `[models.providers.NAME.models."model-id"]`: overrides for one model.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub input_per_million: Option<f64>,
    #[serde(default)]
    pub output_per_million: Option<f64>,
    #[serde(default)]
    pub cached_input_per_million: Option<f64>,
    #[serde(default)]
    pub context_window: Option<u64>,
}

/// A configured provider, ready to call.
pub(crate) struct Provider {
    name: String,
    kind: ProviderKind,
    base_url: String,
    key_secret: Option<String>,
    rates: Rates,
    context_window: Option<u64>,
    models: BTreeMap<String, ModelConfig>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_backoff: Duration,
    max_output_tokens: u32,
    concurrency: usize,
    slots: Arc<tokio::sync::Semaphore>,
}

/// One line of `runway models`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Listing {
    /// An alias, or `provider/model` for a model configured by name.
    pub name: String,
    /// Whether `name` is an alias.
    pub alias: bool,
    pub resolved: Resolved,
    /// The host secret holding the key (its name, never its value).
    pub key_secret: Option<String>,
    pub concurrency: usize,
}

/// The host's models: aliases, providers and one HTTP client.
pub struct Models {
    aliases: BTreeMap<String, String>,
    providers: BTreeMap<String, Provider>,
    client: reqwest::Client,
    /// A test harness's scripted answers, asked instead of the providers.
    pub(crate) script: Option<Arc<crate::testing::Script>>,
}

impl Models {
    /// Validates `[models]`; the message names the key path.
    pub fn new(config: &ModelsConfig) -> Result<Models, String> {
        let mut providers = BTreeMap::new();
        for (name, p) in &config.providers {
            let at = |m: String| format!("models.providers.{name}: {m}");
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
                return Err(at("a provider name has no '/' or spaces".into()));
            }
            let base_url = p
                .base_url
                .clone()
                .unwrap_or_else(|| p.kind.default_base_url().to_owned());
            let url = reqwest::Url::parse(&base_url)
                .map_err(|e| at(format!("base_url {base_url:?} is not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(at("base_url must be http or https".into()));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(at(
                    "base_url must not hold credentials; name a host secret in key_secret".into(),
                ));
            }
            let rates = Rates {
                input_per_million: p.input_per_million,
                output_per_million: p.output_per_million,
                cached_input_per_million: p.cached_input_per_million.unwrap_or(p.input_per_million),
            };
            let all_rates =
                std::iter::once((rates, "".to_owned())).chain(p.models.iter().map(|(m, c)| {
                    (
                        Rates {
                            input_per_million: c.input_per_million.unwrap_or(0.0),
                            output_per_million: c.output_per_million.unwrap_or(0.0),
                            cached_input_per_million: c.cached_input_per_million.unwrap_or(0.0),
                        },
                        format!("models.{m:?}."),
                    )
                }));
            for (r, prefix) in all_rates {
                for (k, v) in [
                    ("input_per_million", r.input_per_million),
                    ("output_per_million", r.output_per_million),
                    ("cached_input_per_million", r.cached_input_per_million),
                ] {
                    if !v.is_finite() || v < 0.0 {
                        return Err(at(format!("{prefix}{k} must be a number >= 0")));
                    }
                }
            }
            let concurrency = p.concurrency.unwrap_or(16);
            if concurrency == 0 {
                return Err(at("concurrency must be at least 1".into()));
            }
            if p.timeout.is_some_and(|t| t.is_zero()) {
                return Err(at("timeout must be greater than 0".into()));
            }
            providers.insert(
                name.clone(),
                Provider {
                    name: name.clone(),
                    kind: p.kind,
                    base_url: base_url.trim_end_matches('/').to_owned(),
                    key_secret: p.key_secret.clone(),
                    rates,
                    context_window: p.context_window,
                    models: p.models.clone(),
                    timeout: p.timeout.unwrap_or(Duration::from_secs(60)),
                    retries: p.retries.unwrap_or(2),
                    backoff: p.backoff.unwrap_or(Duration::from_millis(500)),
                    max_backoff: p.max_backoff.unwrap_or(Duration::from_secs(30)),
                    max_output_tokens: p.max_output_tokens.unwrap_or(1024),
                    concurrency,
                    slots: Arc::new(tokio::sync::Semaphore::new(concurrency)),
                },
            );
        }
        let models = Models {
            aliases: config.aliases.clone(),
            providers,
            client: reqwest::Client::builder()
                .user_agent(concat!("runway/", env!("CARGO_PKG_VERSION")))
                .tcp_nodelay(true)
                .build()
                .map_err(|e| format!("models: HTTP client: {e}"))?,
            script: None,
        };
        for (alias, target) in &config.aliases {
            if alias.contains('/') || alias.is_empty() {
                return Err(format!(
                    "models.aliases.{alias}: an alias has no '/' (that is how provider/model refs are told apart)"
                ));
            }
            models
                .resolve(target)
                .map_err(|e| format!("models.aliases.{alias}: {e}"))?;
            if !target.contains('/') {
                return Err(format!(
                    "models.aliases.{alias}: {target:?} must be provider/model, not another alias"
                ));
            }
        }
        Ok(models)
    }

    /// Resolves an alias or `provider/model`.
    pub fn resolve(&self, reference: &str) -> Result<Resolved, ModelError> {
        let unknown = || ModelError::Unknown(reference.to_owned());
        let target = match self.aliases.get(reference) {
            Some(t) => t.as_str(),
            None => reference,
        };
        let (provider, model) = target.split_once('/').ok_or_else(unknown)?;
        if model.is_empty() {
            return Err(unknown());
        }
        let p = self.providers.get(provider).ok_or_else(unknown)?;
        let m = p.models.get(model).cloned().unwrap_or_default();
        Ok(Resolved {
            reference: target.to_owned(),
            provider: p.name.clone(),
            kind: p.kind,
            model: model.to_owned(),
            base_url: p.base_url.clone(),
            context_window: m.context_window.or(p.context_window),
            rates: Rates {
                input_per_million: m.input_per_million.unwrap_or(p.rates.input_per_million),
                output_per_million: m.output_per_million.unwrap_or(p.rates.output_per_million),
                cached_input_per_million: m
                    .cached_input_per_million
                    .or(m.input_per_million)
                    .unwrap_or(p.rates.cached_input_per_million),
            },
        })
    }

    /// Resolves `reference` for a workflow that may use `allowed` (aliases,
    /// `provider/model` or `provider/*`). A reference is allowed if it is
    /// listed, or resolves to the same model as a listed one.
    pub fn resolve_allowed(
        &self,
        allowed: &[String],
        reference: &str,
    ) -> Result<Resolved, ModelError> {
        let provider_of = |r: &str| r.split_once('/').map(|(p, _)| p.to_owned());
        let listed = allowed.iter().any(|a| {
            a == reference
                || a.strip_suffix("/*")
                    .is_some_and(|p| provider_of(reference).as_deref() == Some(p))
        });
        let resolved = match self.resolve(reference) {
            Ok(r) => r,
            Err(e) if listed => return Err(e),
            Err(_) => return Err(ModelError::NotAllowed(reference.to_owned())),
        };
        let ok = listed
            || allowed.iter().any(|a| match a.strip_suffix("/*") {
                Some(provider) => provider == resolved.provider,
                None => self
                    .resolve(a)
                    .is_ok_and(|r| r.reference == resolved.reference),
            });
        if ok {
            Ok(resolved)
        } else {
            Err(ModelError::NotAllowed(reference.to_owned()))
        }
    }

    /// Every alias, then every model configured by name.
    pub fn list(&self) -> Vec<Listing> {
        let listing = |name: &str, alias: bool| {
            let resolved = self.resolve(name).ok()?;
            let p = self.providers.get(&resolved.provider)?;
            Some(Listing {
                name: name.to_owned(),
                alias,
                key_secret: p.key_secret.clone(),
                concurrency: p.concurrency,
                resolved,
            })
        };
        let aliases = self.aliases.keys().filter_map(|a| listing(a, true));
        let named = self.providers.values().flat_map(|p| {
            p.models
                .keys()
                .filter_map(|m| listing(&format!("{}/{m}", p.name), false))
        });
        aliases.chain(named).collect()
    }

    /// The host secret holding `provider`'s key, if it has one.
    pub fn key_secret(&self, provider: &str) -> Option<&str> {
        self.providers.get(provider)?.key_secret.as_deref()
    }

    /// Calls the provider of `model`, retrying as configured, giving up at
    /// `deadline`. `key` is the provider's key (masked in anything kept).
    pub(crate) async fn generate(
        &self,
        model: &Resolved,
        request: &Request,
        key: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<Generated, ModelError> {
        let p = self
            .providers
            .get(&model.provider)
            .ok_or_else(|| ModelError::Unknown(model.reference.clone()))?;
        if let Some(script) = &self.script {
            return script.model(model, request);
        }
        provider::call(&self.client, p, model, request, key, deadline).await
    }
}

impl Generated {
    /// Why the answer does not do for a request that asked for JSON.
    pub(crate) fn json_problem(&self, request: &Request) -> Option<String> {
        request.json_schema.as_ref()?;
        let e = serde_json::from_str::<serde::de::IgnoredAny>(&self.text).err()?;
        Some(format!(
            "asked for JSON, the answer (finish reason {}) is not JSON: {e}",
            self.finish_reason
        ))
    }
}

/// `text` with every occurrence of `key` (and of any 8-byte run of it, as
/// providers quote keys shortened) replaced by `****`.
pub(crate) fn mask_key(text: &str, key: Option<&str>) -> String {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return text.to_owned();
    };
    let mut out = text.replace(key, "****");
    const WINDOW: usize = 8;
    if key.len() >= WINDOW && key.is_ascii() {
        let mut i = 0;
        while i + WINDOW <= key.len() {
            let part = &key[i..i + WINDOW];
            if out.contains(part) {
                out = out.replace(part, "****");
            }
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ModelsConfig {
        #[derive(Deserialize)]
        struct F {
            models: ModelsConfig,
        }
        toml::from_str::<F>(text).unwrap().models
    }

    const CONFIG: &str = r#"
        [models.aliases]
        default = "oa/gpt-4o-mini"
        smart = "an/claude-x"
        [models.providers.oa]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1/"
        key_secret = "OA_KEY"
        input_per_million = 0.15
        output_per_million = 0.6
        [models.providers.oa.models."gpt-4o"]
        input_per_million = 2.5
        output_per_million = 10.0
        context_window = 128000
        [models.providers.an]
        kind = "anthropic"
        input_per_million = 3
        output_per_million = 15
        cached_input_per_million = 0.3
    "#;

    #[test]
    fn aliases_and_refs_resolve_with_rates_and_never_a_key() {
        let m = Models::new(&config(CONFIG)).unwrap();
        let r = m.resolve("default").unwrap();
        assert_eq!(r.reference, "oa/gpt-4o-mini");
        assert_eq!(r.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(r.rates.cached_input_per_million, 0.15);
        let r = m.resolve("oa/gpt-4o").unwrap();
        assert_eq!(r.context_window, Some(128000));
        assert_eq!(r.rates.output_per_million, 10.0);
        let r = m.resolve("smart").unwrap();
        assert_eq!(r.kind, ProviderKind::Anthropic);
        assert_eq!(r.base_url, "https://api.anthropic.com");
        assert!(!serde_json::to_string(&r).unwrap().contains("KEY"));
        assert_eq!(
            m.resolve("nope").unwrap_err(),
            ModelError::Unknown("nope".into())
        );
        assert_eq!(m.resolve("zz/x").unwrap_err().code(), "MODEL_UNKNOWN");
        assert_eq!(m.resolve("oa/").unwrap_err().code(), "MODEL_UNKNOWN");
    }

    #[test]
    fn allowed_models_match_by_name_by_resolution_or_by_provider() {
        let m = Models::new(&config(CONFIG)).unwrap();
        let allow = |list: &[&str], r: &str| {
            let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            m.resolve_allowed(&list, r).map(|r| r.reference)
        };
        assert_eq!(allow(&["default"], "default").unwrap(), "oa/gpt-4o-mini");
        assert_eq!(
            allow(&["default"], "oa/gpt-4o-mini").unwrap(),
            "oa/gpt-4o-mini"
        );
        assert_eq!(
            allow(&["default"], "oa/gpt-4o").unwrap_err().code(),
            "MODEL_NOT_ALLOWED"
        );
        assert_eq!(allow(&["oa/*"], "oa/anything").unwrap(), "oa/anything");
        assert_eq!(
            allow(&[], "default").unwrap_err().code(),
            "MODEL_NOT_ALLOWED"
        );
        // Unknown and not listed: not allowed (says nothing of the config).
        assert_eq!(
            allow(&["default"], "zz/x").unwrap_err().code(),
            "MODEL_NOT_ALLOWED"
        );
        // Listed but not configured here: unknown.
        assert_eq!(
            allow(&["zz/x"], "zz/x").unwrap_err().code(),
            "MODEL_UNKNOWN"
        );
    }

    #[test]
    fn bad_config_is_refused_with_its_path() {
        for (text, wanted) in [
            ("[models.aliases]\nx = \"nope/m\"\n", "models.aliases.x"),
            (
                "[models.providers.p]\nkind = \"openai\"\nbase_url = \"https://u:pw@h/v1\"\n",
                "credentials",
            ),
            (
                "[models.providers.p]\nkind = \"openai\"\ninput_per_million = -1\n",
                "input_per_million",
            ),
            (
                "[models.providers.p]\nkind = \"openai\"\nconcurrency = 0\n",
                "concurrency",
            ),
        ] {
            let e = Models::new(&config(text)).err().unwrap();
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }

    #[test]
    fn cost_is_counted_in_nano_dollars() {
        let r = Rates {
            input_per_million: 3.0,
            output_per_million: 15.0,
            cached_input_per_million: 0.3,
        };
        let t = Tokens {
            input: 1_000,
            output: 100,
            cached: 400,
        };
        // 600 * 3000 + 400 * 300 + 100 * 15000 nanos
        assert_eq!(r.cost_nanos(t), 1_800_000 + 120_000 + 1_500_000);
    }

    #[test]
    fn keys_are_masked_whole_and_in_parts() {
        let key = "sk-test-0123456789abcdef";
        let m = mask_key(&format!("bad key {key}!"), Some(key));
        assert_eq!(m, "bad key ****!");
        let m = mask_key("Incorrect API key provided: sk-test-****cdef", Some(key));
        assert!(!m.contains("sk-test-"), "{m}");
        assert_eq!(mask_key("nothing", None), "nothing");
    }
}
