//! Request bodies, bounded: size (413), content type (415), JSON nesting
//! depth and syntax (400) — each answered with the error envelope.

use super::error::ApiError;
use crate::sandbox::ingress::json_depth;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};

/// Deepest JSON nesting a request may have.
pub const MAX_JSON_DEPTH: usize = crate::sandbox::ingress::MAX_DEPTH;

/// A request body within the route's size limit.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "BODY_TOO_LARGE",
                        "the request body is over this route's limit",
                    )
                } else {
                    ApiError::bad_request("BAD_BODY", e.body_text())
                }
            })
    }
}

/// Parses a JSON body. An empty body is `default`; anything else must be
/// `application/json` (or carry no content type), nest at most
/// [`MAX_JSON_DEPTH`] deep and parse.
pub fn json(
    headers: &HeaderMap,
    body: &[u8],
    default: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(default);
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                format!("expected application/json, got {mime:?}"),
            ));
        }
    }
    if json_depth(body) > MAX_JSON_DEPTH {
        return Err(ApiError::bad_request(
            "JSON_TOO_DEEP",
            format!("JSON may nest at most {MAX_JSON_DEPTH} levels"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("INVALID_JSON", format!("the body is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_deeper_than_the_limit_is_refused_before_parsing() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        let h = HeaderMap::new();
        assert_eq!(
            json(&h, deep.as_bytes(), serde_json::Value::Null)
                .unwrap_err()
                .code,
            "JSON_TOO_DEEP"
        );
        assert_eq!(
            json(&h, b"  ", serde_json::json!({})).unwrap(),
            serde_json::json!({})
        );
    }
}
