//! Bearer tokens with scopes. Tokens are configured as sha256 digests and
//! compared in constant time; a request's scope must cover the route's.

use super::error::ApiError;
use crate::config::{Scope, TokenConfig};
use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Vec<([u8; 32], Scope, String)>,
}

/// Who a request is, as far as tokens tell.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Caller {
    /// The widest scope the request has.
    #[schema(value_type = String)]
    pub scope: Scope,
    /// The token's configured name (absent on a server without tokens).
    pub name: Option<String>,
    /// The server takes requests without a token (loopback only).
    pub open: bool,
}

impl Auth {
    pub fn new(tokens: &[TokenConfig]) -> Auth {
        let tokens = tokens
            .iter()
            .filter_map(|t| {
                let mut d = [0u8; 32];
                hex::decode_to_slice(&t.sha256, &mut d).ok()?;
                Some((d, t.scope, t.name.clone()))
            })
            .collect();
        Auth { tokens }
    }

    /// No tokens: every request is allowed (the server then listens on
    /// loopback only).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks the request's bearer token against `need`.
    pub fn check(&self, headers: &HeaderMap, need: Scope) -> Result<(), ApiError> {
        let caller = self.caller(headers)?;
        if caller.scope < need {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                format!(
                    "this route needs the {} scope",
                    match need {
                        Scope::Read => "read",
                        Scope::Execute => "execute",
                        Scope::Admin => "admin",
                    }
                ),
            ));
        }
        Ok(())
    }

    /// The request's caller: its token's scope and name (every scope on a
    /// server without tokens), or 401.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if self.is_open() {
            return Ok(Caller {
                scope: Scope::Admin,
                name: None,
                open: true,
            });
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("this route needs a bearer token"));
        };
        // The scheme is case-insensitive (RFC 7235).
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every configured token is compared, so timing says nothing about which matched.
        let mut found = None;
        for (d, scope, name) in &self.tokens {
            if bool::from(d.ct_eq(&digest)) {
                found = Some((*scope, name));
            }
        }
        match found {
            None => Err(unauthorized("the bearer token is not valid")),
            Some((scope, name)) => Ok(Caller {
                scope,
                name: Some(name.clone()),
                open: false,
            }),
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&[
            TokenConfig {
                name: "r".into(),
                sha256: hex::encode(Sha256::digest(b"reader")),
                scope: Scope::Read,
            },
            TokenConfig {
                name: "a".into(),
                sha256: hex::encode(Sha256::digest(b"boss")),
                scope: Scope::Admin,
            },
        ])
    }

    fn with(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn scopes_are_ordered_and_bad_tokens_refused() {
        let a = auth();
        assert_eq!(
            a.check(&HeaderMap::new(), Scope::Read).unwrap_err().status,
            401
        );
        assert_eq!(a.check(&with("nope"), Scope::Read).unwrap_err().status, 401);
        assert!(a.check(&with("reader"), Scope::Read).is_ok());
        assert_eq!(
            a.check(&with("reader"), Scope::Execute).unwrap_err().status,
            403
        );
        assert!(a.check(&with("boss"), Scope::Execute).is_ok());
        assert!(
            Auth::default()
                .check(&HeaderMap::new(), Scope::Admin)
                .is_ok()
        );
    }
}
