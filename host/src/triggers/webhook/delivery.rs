//! Delivering a verified webhook: start a run, or signal the run whose
//! input holds the delivery's correlation value. Delivery ids deduplicate
//! replays. Neither the body nor the key is ever logged.

use super::{Rejection, extract, verify};
use crate::error::HostError;
use crate::host::Host;
use crate::store::Write;
use crate::types::RunId;
use axum::http::HeaderMap;
use serde::Serialize;

/// What a delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HookAction {
    Started,
    Signalled,
}

/// The answer to a delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookReceipt {
    /// The run started, or the run signalled.
    #[schema(value_type = String)]
    pub run_id: RunId,
    /// `started` or `signalled`.
    pub action: HookAction,
    /// This delivery id was seen before; nothing new happened.
    pub duplicate: bool,
}

/// Why a delivery did nothing.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("workflow {0:?} takes no webhooks")]
    NoHook(String),
    #[error("this host has no key for the workflow's webhook")]
    KeyMissing,
    #[error("{reason}: {0}", reason = .0.reason())]
    Rejected(Rejection),
    #[error("the payload has nothing at {0}")]
    NoCorrelationValue(String),
    #[error("the payload has nothing at the manifest's input_pointer")]
    NoInput,
    #[error("no run of this workflow waits for that value")]
    NoWaitingRun,
}

/// A delivery whose signature checked out, not yet acted on.
pub struct VerifiedDelivery {
    slug: String,
    trigger: super::WebhookTrigger,
    delivery_id: Option<String>,
}

impl Host {
    /// Checks a delivery for `slug` against the scheme its manifest names,
    /// on the raw body, before anything parses it.
    pub fn verify_webhook(
        &self,
        slug: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedDelivery, HostError> {
        let no_hook = || WebhookError::NoHook(slug.to_owned());
        let wf = self.workflow(slug, None)?.ok_or_else(no_hook)?;
        let trigger = self
            .manifest(&wf)?
            .triggers
            .webhook
            .clone()
            .ok_or_else(no_hook)?;
        let Some(key) = self.host_secret(&trigger.secret) else {
            tracing::error!(workflow = %slug, secret = %trigger.secret, "webhook key is not set on this host");
            return Err(WebhookError::KeyMissing.into());
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match verify(&trigger, key.as_bytes(), headers, body, now) {
            Ok(v) => {
                crate::metrics::webhook(slug, "verified");
                Ok(VerifiedDelivery {
                    slug: slug.to_owned(),
                    trigger,
                    delivery_id: v.delivery_id,
                })
            }
            Err(r) => {
                crate::metrics::webhook(slug, r.reason());
                tracing::info!(workflow = %slug, reason = r.reason(), "webhook rejected");
                Err(WebhookError::Rejected(r).into())
            }
        }
    }

    /// Acts on a verified delivery whose body is `payload`. The receipt is
    /// durable before this returns (it acknowledges the delivery).
    pub async fn deliver_webhook(
        &self,
        delivery: VerifiedDelivery,
        payload: serde_json::Value,
    ) -> Result<HookReceipt, HostError> {
        let VerifiedDelivery {
            slug,
            trigger,
            delivery_id,
        } = delivery;
        let key = delivery_id.as_ref().map(|d| format!("hook:{slug}:{d}"));
        let Some(route) = &trigger.signal else {
            let input =
                extract(&payload, trigger.input_pointer.as_deref()).ok_or(WebhookError::NoInput)?;
            // Past the queue bound: 429, so the sender retries later.
            let bound = self.config().server.max_queued_runs;
            let by = match &delivery_id {
                Some(d) => format!("webhook:{slug}:{d}"),
                None => format!("webhook:{slug}"),
            };
            let started = self
                .start_admitted(
                    &slug,
                    input,
                    key,
                    bound,
                    crate::types::Trigger::new("webhook", by),
                )
                .await?;
            self.flush().await?;
            tracing::info!(workflow = %slug, run = %started.id, duplicate = !started.created, "webhook started a run");
            return Ok(HookReceipt {
                run_id: started.id,
                action: HookAction::Started,
                duplicate: !started.created,
            });
        };
        let wanted = extract(&payload, Some(&route.correlation_pointer))
            .ok_or_else(|| WebhookError::NoCorrelationValue(route.correlation_pointer.clone()))?;
        // A replayed delivery is answered from its key: the run it signalled
        // may have ended since, and must not turn the replay into a 404.
        if let Some(k) = &key
            && let Some(run) = self.store().run_for_key(k)?
        {
            return Ok(HookReceipt {
                run_id: run,
                action: HookAction::Signalled,
                duplicate: true,
            });
        }
        let run = self
            .correlated_run(&slug, &route.input_pointer, &wanted)?
            .ok_or(WebhookError::NoWaitingRun)?;
        let data = extract(&payload, trigger.input_pointer.as_deref()).unwrap_or_default();
        let by = format!("webhook:{slug}");
        let receipt = self
            .signal_as(run, &route.name, data, delivery_id, Some(by))
            .await?;
        tracing::info!(workflow = %slug, %run, signal = %route.name, duplicate = receipt.duplicate, "webhook signalled a run");
        if let Some(k) = key {
            self.store()
                .client_commit(vec![Write::PutKey(k, run)])
                .await?;
        }
        Ok(HookReceipt {
            run_id: run,
            action: HookAction::Signalled,
            duplicate: receipt.duplicate,
        })
    }

    /// The oldest run of `slug` that has not ended and whose input holds
    /// `wanted` at `pointer`.
    fn correlated_run(
        &self,
        slug: &str,
        pointer: &str,
        wanted: &serde_json::Value,
    ) -> Result<Option<RunId>, HostError> {
        Ok(self
            .store()
            .active_records()?
            .into_iter()
            .find(|r| r.workflow == slug && r.input.pointer(pointer) == Some(wanted))
            .map(|r| r.id))
    }
}
