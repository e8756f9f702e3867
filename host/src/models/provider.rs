//! One provider call: attempts, retries with backoff and `Retry-After`,
//! the per-provider concurrency cap, timeouts and key masking.

use super::{
    ModelError, Provider, ProviderKind, Request, Resolved, Tokens, anthropic, mask_key, openai,
};
use crate::retry::{self, Attempt, Retries, retry_after};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// How much of a provider's error message is kept.
const MAX_MESSAGE: usize = 1024;

/// A provider's answer, as journaled and handed to the guest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Generated {
    pub text: String,
    pub finish_reason: String,
    pub tokens: Tokens,
    /// Nano-dollars at the configured rates.
    pub cost_nanos: u64,
    pub model: Resolved,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// From the first attempt to the answer, retries and waits included.
    pub latency_ms: u64,
    /// The tools the model asked to call (`finish_reason` `tool-calls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<super::ToolCall>,
}

/// What the wire-format modules read out of a 2xx answer.
pub(super) struct Answer {
    pub text: String,
    pub finish_reason: String,
    pub tokens: Tokens,
    pub tool_calls: Vec<super::ToolCall>,
}

pub(super) async fn call(
    client: &reqwest::Client,
    p: &Provider,
    model: &Resolved,
    request: &Request,
    key: Option<&str>,
    deadline: Instant,
) -> Result<Generated, ModelError> {
    let started = Instant::now();
    let max_output = request.max_output_tokens.unwrap_or(p.max_output_tokens);
    let (url, body) = match p.kind {
        ProviderKind::Openai => (
            format!("{}/chat/completions", p.base_url),
            openai::body(&model.model, request, max_output),
        ),
        ProviderKind::Anthropic => (
            format!("{}/v1/messages", p.base_url),
            anthropic::body(&model.model, request, max_output),
        ),
    };
    let body =
        bytes::Bytes::from(serde_json::to_vec(&body).map_err(|e| {
            ModelError::InvalidRequest(format!("the request cannot be encoded: {e}"))
        })?);
    let retries = Retries {
        retries: p.retries,
        backoff: p.backoff,
        max_backoff: p.max_backoff,
    };
    let tried = retry::run(retries, deadline, &p.name, |_| async {
        let timeout = p
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let _slot = tokio::time::timeout_at(deadline, p.slots.acquire())
            .await
            .map_err(|_| {
                Attempt::Fail(ModelError::Timeout {
                    provider: p.name.clone(),
                    after: started.elapsed(),
                })
            })?
            .map_err(|_| {
                Attempt::Fail(ModelError::InvalidRequest(
                    "the host is shutting down".into(),
                ))
            })?;
        attempt(client, p, &url, body.clone(), key, timeout, request).await
    })
    .await;
    match tried {
        Ok((answer, attempts)) => {
            let text = match key {
                Some(k) if !k.is_empty() && answer.text.contains(k) => {
                    answer.text.replace(k, "****")
                }
                _ => answer.text,
            };
            // A provider that echoes the key into a call's arguments does
            // not hand it to the guest either.
            let tool_calls = answer
                .tool_calls
                .into_iter()
                .map(|mut c| {
                    if let Some(k) = key.filter(|k| !k.is_empty()) {
                        let text = c.arguments.to_string();
                        if text.contains(k) {
                            c.arguments = serde_json::from_str(&text.replace(k, "****"))
                                .unwrap_or(serde_json::Value::Null);
                        }
                    }
                    c
                })
                .collect();
            Ok(Generated {
                text,
                finish_reason: answer.finish_reason,
                cost_nanos: model.rates.cost_nanos(answer.tokens),
                tokens: answer.tokens,
                model: model.clone(),
                attempts,
                latency_ms: started.elapsed().as_millis() as u64,
                tool_calls,
            })
        }
        Err((
            ModelError::RateLimited {
                provider, message, ..
            },
            attempts,
        )) => Err(ModelError::RateLimited {
            provider,
            attempts,
            message,
        }),
        Err((e, _)) => Err(e),
    }
}

async fn attempt(
    client: &reqwest::Client,
    p: &Provider,
    url: &str,
    body: bytes::Bytes,
    key: Option<&str>,
    timeout: Duration,
    request: &Request,
) -> Result<Answer, Attempt<ModelError>> {
    let mut req = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    req = match (p.kind, key) {
        (ProviderKind::Openai, Some(k)) => req.bearer_auth(k),
        (ProviderKind::Anthropic, k) => {
            let req = req.header("anthropic-version", anthropic::VERSION);
            match k {
                Some(k) => req.header("x-api-key", k),
                None => req,
            }
        }
        (ProviderKind::Openai, None) => req,
    };
    let provider = || p.name.clone();
    let timed_out = || {
        Attempt::Fail(ModelError::Timeout {
            provider: provider(),
            after: timeout,
        })
    };
    let res = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(timed_out()),
        Err(e) => {
            // Connection refused, reset...: the request may not have
            // arrived; another attempt is safe enough.
            return Err(Attempt::Retry {
                error: ModelError::Provider {
                    provider: provider(),
                    status: 0,
                    message: mask_key(&format!("could not reach the provider: {}", chain(&e)), key),
                },
                after: None,
            });
        }
    };
    let status = res.status();
    let retry_after = retry_after(res.headers());
    let bytes = match res.bytes().await {
        Ok(b) => b,
        Err(e) if e.is_timeout() => return Err(timed_out()),
        Err(e) => {
            return Err(Attempt::Retry {
                error: ModelError::Provider {
                    provider: provider(),
                    status: status.as_u16(),
                    message: mask_key(&format!("the answer broke off: {}", chain(&e)), key),
                },
                after: None,
            });
        }
    };
    if status.is_success() {
        let parsed = match p.kind {
            ProviderKind::Openai => openai::parse(&bytes, request),
            ProviderKind::Anthropic => anthropic::parse(&bytes, request),
        };
        return parsed.map_err(|message| {
            Attempt::Fail(ModelError::InvalidResponse {
                provider: provider(),
                message: mask_key(&message, key),
            })
        });
    }
    let message = mask_key(&error_message(&bytes), key);
    let code = status.as_u16();
    if code == 429 {
        return Err(Attempt::Retry {
            error: ModelError::RateLimited {
                provider: provider(),
                attempts: 0,
                message,
            },
            after: retry_after,
        });
    }
    let error = ModelError::Provider {
        provider: provider(),
        status: code,
        message,
    };
    // 529 is Anthropic's "overloaded".
    if status.is_server_error() || code == 529 {
        Err(Attempt::Retry {
            error,
            after: retry_after,
        })
    } else {
        Err(Attempt::Fail(error))
    }
}

/// The message in a provider's error body (both formats put it at
/// `error.message`), or the body's start.
fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.pointer("/message"))
                .and_then(|m| m.as_str().map(str::to_owned))
        });
    let mut m = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    if m.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push('…');
    }
    if m.is_empty() {
        m = "(no message)".into();
    }
    m
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_either_format_and_are_bounded() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad","type":"x"}}"#),
            "bad"
        );
        assert_eq!(
            error_message(br#"{"type":"error","error":{"type":"api_error","message":"oops"}}"#),
            "oops"
        );
        assert_eq!(error_message(b"plain"), "plain");
        assert!(error_message(&[b'a'; 5000]).len() <= MAX_MESSAGE + 3);
    }
}
