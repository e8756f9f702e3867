//! Who a request is: every authenticated request has a [`Principal`] —
//! a named token, a JWT's subject, or a user a trusted proxy vouches for —
//! with [`Grants`] saying what it may do. The `authenticate` middleware
//! works it out once per request; handlers take it as [`Caller`] and ask
//! for the scope their route needs.

mod jwt;
mod proxy;

use super::error::ApiError;
use crate::config::{Grants, Scope, ServerSettings};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// Who made a request.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Principal {
    /// `token` (a named API token), `jwt`, `proxy` (a trusted proxy's
    /// user), or `local` (a loopback server without authentication).
    pub kind: &'static str,
    /// The token's name, the JWT's subject, the proxy's user; absent for
    /// `local`.
    pub id: Option<String>,
    /// What it may do, as written (`SCOPE[:WORKFLOW]`).
    #[serde(serialize_with = "grant_items")]
    #[schema(value_type = Vec<String>)]
    pub scopes: Grants,
}

fn grant_items<S: serde::Serializer>(g: &Grants, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(g.items())
}

impl Principal {
    /// The principal as events, runs and the audit trail name it:
    /// `token:ci`, `jwt:alice`, `proxy:bob`, `local`.
    pub fn label(&self) -> String {
        match &self.id {
            Some(id) => format!("{}:{id}", self.kind),
            None => self.kind.to_owned(),
        }
    }

    /// Refuses (403) unless the principal has `scope` server-wide.
    pub fn need(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.allows(scope, None) {
            return Ok(());
        }
        Err(forbidden(format!(
            "this route needs the {} scope",
            scope.as_str()
        )))
    }

    /// Refuses (403) unless the principal has `scope` on `workflow`.
    pub fn need_for(&self, scope: Scope, workflow: &str) -> Result<(), ApiError> {
        if self.scopes.allows(scope, Some(workflow)) {
            return Ok(());
        }
        Err(forbidden(format!(
            "this route needs the {} scope on {workflow}",
            scope.as_str()
        )))
    }
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
}

/// The ways requests authenticate, as configured.
#[derive(Default)]
pub struct Auth {
    tokens: Vec<([u8; 32], Grants, String)>,
    jwt: Option<jwt::Verifier>,
    proxy: Option<proxy::Proxy>,
}

impl Auth {
    /// From the server's settings; `secret` reads host secrets (the HS256
    /// key). Fails on a setting that cannot work (a bad CIDR, a missing
    /// secret, a JWKS file that does not parse).
    pub fn new(
        settings: &ServerSettings,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<Auth, String> {
        let tokens = settings
            .tokens
            .iter()
            .filter_map(|t| {
                let mut d = [0u8; 32];
                hex::decode_to_slice(&t.sha256, &mut d).ok()?;
                Some((d, t.scope.clone(), t.name.clone()))
            })
            .collect();
        let jwt = match &settings.jwt {
            Some(c) => Some(jwt::Verifier::new(c, &secret)?),
            None => None,
        };
        let proxy = match &settings.proxy {
            Some(c) => Some(proxy::Proxy::new(c)?),
            None => None,
        };
        Ok(Auth { tokens, jwt, proxy })
    }

    /// Only named tokens (tests, and servers without JWT or a proxy).
    pub fn with_tokens(tokens: &[crate::config::TokenConfig]) -> Auth {
        let settings = ServerSettings {
            tokens: tokens.to_vec(),
            ..ServerSettings::default()
        };
        Auth::new(&settings, |_| None).unwrap_or_default()
    }

    /// Nothing configured: every request is allowed (the server then
    /// listens on loopback only).
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.jwt.is_none() && self.proxy.is_none()
    }

    /// Fetches a JWKS URL's keys now (at start; later on their own).
    pub async fn warm(&self) {
        if let Some(j) = &self.jwt {
            j.refresh().await;
        }
    }

    /// Who the request is, or 401. `peer`: the connection's source
    /// address (a proxy's headers count only from a trusted one).
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Principal, ApiError> {
        if let Some(p) = &self.proxy
            && let Some(principal) = p.identify(headers, peer)?
        {
            return Ok(principal);
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            if self.is_open() {
                return Ok(Principal {
                    kind: "local",
                    id: None,
                    scopes: Grants::from(Scope::Admin),
                });
            }
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
        // Every configured token is compared, so timing says nothing about
        // which matched.
        let mut found = None;
        for (d, grants, name) in &self.tokens {
            if bool::from(d.ct_eq(&digest)) {
                found = Some((grants, name));
            }
        }
        if let Some((grants, name)) = found {
            return Ok(Principal {
                kind: "token",
                id: Some(name.clone()),
                scopes: grants.clone(),
            });
        }
        match &self.jwt {
            Some(j) if token.split('.').count() == 3 => j
                .verify(token)
                .await
                .map_err(|why| unauthorized(format!("the bearer token is not valid: {why}"))),
            _ => Err(unauthorized("the bearer token is not valid")),
        }
    }
}

/// The outcome of authenticating a request, left in its extensions by the
/// `authenticate` middleware.
#[derive(Clone)]
pub(crate) struct Identity(pub Result<Principal, ApiError>);

/// A handler's authenticated caller: the request is refused with 401 before
/// the handler runs if it has none.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Identity>() {
            Some(Identity(Ok(p))) => Ok(Caller(p.clone())),
            Some(Identity(Err(e))) => Err(e.clone()),
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "the request was not authenticated",
            )),
        }
    }
}

impl std::ops::Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn auth() -> Auth {
        Auth::with_tokens(&[
            TokenConfig {
                name: "r".into(),
                sha256: hex::encode(Sha256::digest(b"reader")),
                scope: Scope::Read.into(),
            },
            TokenConfig {
                name: "a".into(),
                sha256: hex::encode(Sha256::digest(b"boss")),
                scope: Scope::Admin.into(),
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

    #[tokio::test]
    async fn named_tokens_have_their_scopes_and_bad_ones_are_refused() {
        let a = auth();
        let status = |r: Result<Principal, ApiError>| r.map_or_else(|e| e.status.as_u16(), |_| 200);
        assert_eq!(status(a.identify(&HeaderMap::new(), None).await), 401);
        assert_eq!(status(a.identify(&with("nope"), None).await), 401);
        let reader = a.identify(&with("reader"), None).await.unwrap();
        assert_eq!(reader.label(), "token:r");
        assert!(reader.need(Scope::Read).is_ok());
        assert_eq!(reader.need(Scope::Execute).unwrap_err().status, 403);
        assert!(
            a.identify(&with("boss"), None)
                .await
                .unwrap()
                .need(Scope::Admin)
                .is_ok()
        );
        let local = Auth::default()
            .identify(&HeaderMap::new(), None)
            .await
            .unwrap();
        assert_eq!(local.label(), "local");
        assert!(local.need(Scope::Admin).is_ok());
    }
}
