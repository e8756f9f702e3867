//! A trusted proxy in front (an SSO gateway): it authenticates users and
//! names them in headers, which count only on connections from the source
//! addresses configured — from anywhere else they are ignored.

use super::{Principal, unauthorized};
use crate::api::error::ApiError;
use crate::config::{Grants, ProxyConfig};
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

pub(super) struct Proxy {
    trusted: Vec<IpNet>,
    user_header: String,
    scopes_header: String,
}

impl Proxy {
    pub(super) fn new(c: &ProxyConfig) -> Result<Proxy, String> {
        let trusted = c
            .trusted
            .iter()
            .map(|t| {
                t.parse::<IpNet>()
                    .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("server.proxy.trusted: {t:?} is not an address or CIDR"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if trusted.is_empty() {
            return Err("server.proxy.trusted: name the proxy's source addresses".into());
        }
        Ok(Proxy {
            trusted,
            // Header names are case-insensitive; looked up lower-case.
            user_header: c
                .user_header
                .as_deref()
                .unwrap_or("x-forwarded-user")
                .to_ascii_lowercase(),
            scopes_header: c
                .scopes_header
                .as_deref()
                .unwrap_or("x-forwarded-scopes")
                .to_ascii_lowercase(),
        })
    }

    /// The user the proxy names, if the request came through it with one.
    pub(super) fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Option<Principal>, ApiError> {
        let from_proxy = peer.is_some_and(|ip| {
            // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            self.trusted.iter().any(|n| n.contains(&ip))
        });
        if !from_proxy {
            return Ok(None);
        }
        let Some(user) = headers.get(self.user_header.as_str()) else {
            return Ok(None);
        };
        let user = user
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|u| !u.is_empty() && u.len() <= 256)
            .ok_or_else(|| unauthorized("the proxy's user header is not a name"))?;
        let scopes = match headers.get(self.scopes_header.as_str()) {
            None => Grants::default(),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.parse::<Grants>().ok())
                .ok_or_else(|| unauthorized("the proxy's scopes header does not parse"))?,
        };
        Ok(Some(Principal {
            kind: "proxy",
            id: Some(user.to_owned()),
            scopes,
        }))
    }
}
