//! The audit trail: every state-changing request, and every refused one.

use super::Timestamp;
use serde::{Deserialize, Serialize};

/// One request in the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Its place in the trail (assigned as it is stored; 0 before).
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who (`token:ci`, `jwt:alice`, `proxy:bob`, `local`); absent when
    /// the request named nobody valid (a 401).
    pub principal: Option<String>,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub status: u16,
    /// `ok` (2xx, 3xx), `refused` (401, 403) or `failed` (any other).
    pub outcome: String,
    /// The request's id (its `X-Request-Id`), as in the access log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}
