//! `runway:workflow/artifacts`: files a run writes and reads back by name.

use super::failure;
use crate::artifact_store::validate_name;
use crate::bindings::artifacts::{ArtifactRef, Host};
use crate::bindings::types::Failure;
use crate::journal::Call;
use crate::run::RunState;
use crate::run::fault::RunFault;
use crate::types::{ArtifactMeta, BudgetKind, EventBody, now};
use serde::{Deserialize, Serialize};

/// Bodies larger than this are written on the blocking pool.
const INLINE_WRITE: usize = 64 * 1024;

/// What a journaled write returned.
#[derive(Serialize, Deserialize)]
struct Written {
    digest: String,
    size: u64,
}

impl Host for RunState {
    async fn write(
        &mut self,
        name: String,
        content_type: String,
        body: Vec<u8>,
        metadata: Option<String>,
    ) -> wasmtime::Result<Result<ArtifactRef, Failure>> {
        // Argument checks are pure functions of the arguments: not journaled.
        if let Err(e) = validate_name(&name) {
            return Ok(Err(failure("ARTIFACT_NAME_INVALID", e.to_string())));
        }
        if content_type.len() > 255 || content_type.chars().any(char::is_control) {
            return Ok(Err(failure(
                "ARTIFACT_CONTENT_TYPE_INVALID",
                "content type must be at most 255 bytes without control characters",
            )));
        }
        let metadata = match metadata.as_deref().map(serde_json::from_str) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                return Ok(Err(failure(
                    "ARTIFACT_METADATA_INVALID",
                    format!("metadata is not JSON: {e}"),
                )));
            }
        };
        let content_type = if content_type.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            content_type
        };

        let used = self.artifact_bytes + body.len() as u64;
        let limit = self.run.budget.max_artifact_bytes;
        if used > limit {
            return Err(self.fail(RunFault::Budget {
                budget: BudgetKind::MaxArtifactBytes,
                limit,
                used,
            }));
        }

        let call = Call::new(
            "runway:workflow/artifacts.write",
            &[name.as_bytes(), content_type.as_bytes(), &body],
        );
        let replayed: Option<Written> = self
            .shared
            .journal
            .lock()
            .replay(&call)
            .map_err(|e| self.fail(e.into()))?;
        let written = match replayed {
            Some(w) => {
                self.shared.recorder.lock().replayed(0);
                w
            }
            None => {
                let size = body.len() as u64;
                let store = self.host.artifacts.clone();
                let digest = if body.len() <= INLINE_WRITE {
                    store.put(&body)
                } else {
                    tokio::task::spawn_blocking(move || store.put(&body))
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r)
                }
                .map_err(|e| self.fail(RunFault::Internal(format!("writing artifact: {e}"))))?;
                let written = Written { digest, size };
                self.shared.journal.lock().record(call, &written);
                let meta = ArtifactMeta {
                    run_id: self.run.id,
                    name: name.clone(),
                    content_type: content_type.clone(),
                    digest: written.digest.clone(),
                    size,
                    metadata,
                    created_at: now(),
                };
                {
                    let mut rec = self.shared.recorder.lock();
                    rec.guest(EventBody::ArtifactWritten {
                        name: name.clone(),
                        digest: written.digest.clone(),
                        size,
                        content_type,
                    })
                    .map_err(|f| rec.fail(f))?;
                    rec.new_artifacts.push(meta);
                }
                self.flush_effects();
                written
            }
        };
        self.artifact_bytes = used;
        self.artifact_digests
            .insert(name.clone(), written.digest.clone());
        Ok(Ok(ArtifactRef {
            name,
            digest: written.digest,
            size: written.size,
        }))
    }

    async fn read(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, Failure>> {
        // A run reads only what it wrote itself: a pure function of its past.
        let Some(digest) = self.artifact_digests.get(&name).cloned() else {
            return Ok(Err(failure(
                "ARTIFACT_NOT_FOUND",
                format!("this run has written no artifact named {name:?}"),
            )));
        };
        let store = self.host.artifacts.clone();
        match tokio::task::spawn_blocking(move || store.get(&digest)).await {
            Ok(Ok(body)) => Ok(Ok(body)),
            Ok(Err(e)) => Err(self.fail(RunFault::Internal(format!("reading artifact: {e}")))),
            Err(e) => Err(self.fail(RunFault::Internal(format!("reading artifact: {e}")))),
        }
    }
}
