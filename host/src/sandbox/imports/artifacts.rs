//! `runway:workflow/artifacts`: files a run writes and reads back by name.

use super::failure;
use crate::sandbox::bindings::artifacts::{ArtifactRef, Host as ArtifactsImport};
use crate::sandbox::bindings::types::Failure;
use crate::sandbox::effect::{Commit, Effects, OnReplay, Performed, Recorded};
use crate::sandbox::fault::RunFault;
use crate::sandbox::ingress;
use crate::sandbox::journal::Call;
use crate::sandbox::state::{RunContext, RunState, WrittenArtifacts};
use crate::store::Write;
use crate::store::blobs::{ArtifactStore, validate_name};
use crate::types::{ArtifactMeta, BudgetKind, EventBody, FailureCode, now};
use serde::{Deserialize, Serialize};
use wasmtime::component::HasData;

/// Bodies larger than this are written on the blocking pool.
const INLINE_WRITE: usize = 64 * 1024;
/// Largest metadata (JSON text) an artifact may carry.
const MAX_METADATA: usize = 64 * 1024;

/// What a journaled write returned.
#[derive(Serialize, Deserialize)]
struct Written {
    digest: String,
    size: u64,
}

/// What `artifacts` sees of a run.
pub(super) struct ArtifactsView<'a> {
    run: &'a RunContext,
    effects: &'a Effects,
    blobs: &'a std::sync::Arc<ArtifactStore>,
    /// Told when the artifact files cannot be written (the disk is full).
    store: &'a crate::store::Store,
    written: &'a mut WrittenArtifacts,
}

pub(super) struct Artifacts;

impl HasData for Artifacts {
    type Data<'a> = ArtifactsView<'a>;
}

pub(super) fn view(s: &mut RunState) -> ArtifactsView<'_> {
    ArtifactsView {
        run: &s.run,
        effects: &s.effects,
        blobs: &s.host.artifacts,
        store: &s.host.store,
        written: &mut s.artifacts,
    }
}

impl ArtifactsImport for ArtifactsView<'_> {
    async fn write(
        &mut self,
        name: String,
        content_type: String,
        body: Vec<u8>,
        metadata: Option<String>,
    ) -> wasmtime::Result<Result<ArtifactRef, Failure>> {
        // Argument checks are pure functions of the arguments: not journaled.
        if let Err(e) = validate_name(&name) {
            return Ok(Err(failure(
                FailureCode::ArtifactNameInvalid,
                e.to_string(),
            )));
        }
        if content_type.len() > 255 || content_type.chars().any(char::is_control) {
            return Ok(Err(failure(
                FailureCode::ArtifactContentTypeInvalid,
                "content type must be at most 255 bytes without control characters",
            )));
        }
        let metadata_len = metadata.as_ref().map_or(0, String::len);
        let mut metadata = match metadata
            .as_deref()
            .map(|m| ingress::json("metadata", m, MAX_METADATA))
        {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                return Ok(Err(failure(
                    FailureCode::ArtifactMetadataInvalid,
                    e.to_string(),
                )));
            }
        };
        let content_type = if content_type.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            content_type
        };
        // Everything stored for it counts, not only the body.
        let stored = body.len() + name.len() + content_type.len() + metadata_len;
        let used = self.written.bytes + stored as u64;
        let limit = self.run.budget.max_artifact_bytes;
        if used > limit {
            return Err(self.effects.fail(RunFault::Budget {
                budget: BudgetKind::MaxArtifactBytes,
                limit,
                used,
            }));
        }

        let call = Call::new(
            "runway:workflow/artifacts.write",
            &[name.as_bytes(), content_type.as_bytes(), &body],
        );
        let run = self.run.id;
        let blobs = self.blobs.clone();
        let effects = self.effects;
        let store = self.store;
        let pin_slot = parking_lot::Mutex::new(None);
        let pin_slot = &pin_slot;
        let perform = || async {
            let size = body.len() as u64;
            if let Some(m) = &mut metadata {
                effects.mask_value(m);
            }
            // What is stored names no secret value (the guest reads back by
            // the name it gave).
            let (stored_name, content_type) = (effects.mask(&name), effects.mask(&content_type));
            // The pin keeps the blob's file until the record naming it is
            // committed (see below).
            let (digest, pin) = if body.len() <= INLINE_WRITE {
                blobs.put(&body)
            } else {
                tokio::task::spawn_blocking(move || blobs.put(&body))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
            }
            .map_err(|e| {
                let reason = format!("writing artifact: {e}");
                store.report_fault(reason.clone());
                effects.fail(RunFault::Storage(reason))
            })?;
            *pin_slot.lock() = Some(pin);
            let event = EventBody::ArtifactWritten {
                name: stored_name.clone(),
                digest: digest.clone(),
                size,
                content_type: content_type.clone(),
            };
            let meta = ArtifactMeta {
                run_id: run,
                name: stored_name,
                content_type,
                digest: digest.clone(),
                size,
                metadata,
                created_at: now(),
            };
            Ok(Performed::quiet(Written { digest, size })
                .event(Recorded::Guest {
                    body: event,
                    output_bytes: 0,
                })
                .commit(Commit::Flush, vec![Write::PutArtifact(Box::new(meta))]))
        };
        let written = effects
            .effect(call, OnReplay::GuestEvent { output_bytes: 0 }, perform)
            .await;
        // The record is queued for the writer now; the pin goes once the
        // writer has applied it (a later commit request is applied after).
        if let Some(pin) = pin_slot.lock().take() {
            let applied = self.store.submit_applied(Vec::new());
            tokio::spawn(async move {
                let _ = applied.wait().await;
                drop(pin);
            });
        }
        let written = written?;
        self.written.bytes = used;
        self.written
            .digests
            .insert(name.clone(), written.digest.clone());
        Ok(Ok(ArtifactRef {
            name,
            digest: written.digest,
            size: written.size,
        }))
    }

    async fn read(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, Failure>> {
        // A run reads only what it wrote itself: a pure function of its past.
        let Some(digest) = self.written.digests.get(&name).cloned() else {
            return Ok(Err(failure(
                FailureCode::ArtifactNotFound,
                format!("this run has written no artifact named {name:?}"),
            )));
        };
        let blobs = self.blobs.clone();
        match tokio::task::spawn_blocking(move || blobs.get(&digest)).await {
            Ok(Ok(body)) => Ok(Ok(body)),
            Ok(Err(e)) => Err(self
                .effects
                .fail(RunFault::Storage(format!("reading artifact: {e}")))),
            Err(e) => Err(self
                .effects
                .fail(RunFault::Internal(format!("reading artifact: {e}")))),
        }
    }
}
