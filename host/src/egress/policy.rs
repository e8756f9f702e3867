//! Who may be reached: the operator's `[egress]` rules intersected with the
//! manifest's `[http]` rules, default deny, and the addresses no rule
//! reaches unless the operator names them (private, loopback, link-local,
//! metadata).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One rule: `[scheme://]host[:port]`. `host` is a name, an IP address,
/// `*.domain` (any name under `domain`, not `domain` itself) or `*` (any);
/// `port` is a number or `*`, and defaults to the scheme's; the scheme is
/// `https` (the default) or `http`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    text: String,
    scheme: String,
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// Names ending with `.suffix`.
    Under(String),
}

impl Rule {
    pub fn parse(text: &str) -> Result<Rule, String> {
        let bad = |why: &str| format!("egress rule {text:?}: {why}");
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) => (s.to_ascii_lowercase(), rest),
            None => ("https".to_owned(), text),
        };
        if scheme != "https" && scheme != "http" {
            return Err(bad("the scheme must be https or http"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad("expected [scheme://]host[:port]"));
        }
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => Some(default_port(&scheme)),
            Some("*") => None,
            Some(p) => Some(
                p.parse()
                    .map_err(|_| bad("the port must be a number or *"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(bad("a wildcard is `*` or `*.domain`"));
            }
            HostPattern::Under(suffix.to_owned())
        } else if host.is_empty() || host.contains('*') {
            return Err(bad("a wildcard is `*` or `*.domain`"));
        } else {
            HostPattern::Exact(host)
        };
        Ok(Rule {
            text: text.to_owned(),
            scheme,
            host,
            port,
        })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme == scheme
            && self.port.is_none_or(|p| p == port)
            && match &self.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => h == host,
                HostPattern::Under(s) => host
                    .strip_suffix(s.as_str())
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            }
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "http" { 80 } else { 443 }
}

/// What the policy decided for one request, as the run's history keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The rules that let it through: the host's, then the manifest's.
    Allowed {
        host_rule: String,
        manifest_rule: String,
    },
    Denied {
        reason: String,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// The operator's half: `[egress]` in the host config.
#[derive(Clone, Debug, Default)]
pub struct HostRules {
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
    /// Restricted address ranges workflows may reach all the same.
    pub allow_private: Vec<IpNet>,
}

/// The author's half: `[http]` in the manifest.
#[derive(Clone, Debug, Default)]
pub struct ManifestRules {
    pub allow: Vec<Rule>,
    /// Upper-case method names; empty: any.
    pub methods: Vec<String>,
}

/// Whether `method` to `url` may leave the host (before any address is
/// known: the address is checked by [`HostRules::address_allowed`]).
pub fn decide(
    host: &HostRules,
    manifest: &ManifestRules,
    method: &str,
    url: &url::Url,
) -> Decision {
    let denied = |reason: String| Decision::Denied { reason };
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        return denied(format!("the scheme {scheme:?} is not http or https"));
    }
    let Some(name) = url
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
    else {
        return denied("the URL has no host".into());
    };
    let port = url.port_or_known_default().unwrap_or(default_port(scheme));
    if !manifest.methods.is_empty() && !manifest.methods.iter().any(|m| m == method) {
        return denied(format!(
            "the manifest's [http] methods do not include {method}"
        ));
    }
    if let Some(rule) = host.deny.iter().find(|r| r.matches(scheme, &name, port)) {
        return denied(format!("the host's [egress] deny rule {:?}", rule.text));
    }
    let Some(host_rule) = host.allow.iter().find(|r| r.matches(scheme, &name, port)) else {
        return denied(format!(
            "no rule in the host's [egress] allow lets {scheme}://{name}:{port} out"
        ));
    };
    let Some(manifest_rule) = manifest
        .allow
        .iter()
        .find(|r| r.matches(scheme, &name, port))
    else {
        return denied(format!(
            "no rule in the manifest's [http] allow names {scheme}://{name}:{port}"
        ));
    };
    Decision::Allowed {
        host_rule: host_rule.text.clone(),
        manifest_rule: manifest_rule.text.clone(),
    }
}

impl HostRules {
    /// Whether a connection may go to `ip`: any public address, and a
    /// restricted one only inside an `allow_private` range.
    pub fn address_allowed(&self, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        match restricted(ip) {
            None => Ok(()),
            Some(_) if self.allow_private.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(kind) => Err(format!(
                "{ip} is a {kind} address (the host's [egress] allow_private does not include it)"
            )),
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is checked as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The kind of restricted range `ip` is in, if any.
fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                // 169.254.169.254 is the cloud metadata service.
                Some("link-local (cloud metadata)")
            } else if v4.is_unspecified() || v4.is_broadcast() || a == 0 {
                Some("unroutable")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (carrier-grade NAT)")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unroutable")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<Rule> {
        list.iter().map(|r| Rule::parse(r).unwrap()).collect()
    }

    fn decision(host: &HostRules, manifest: &ManifestRules, method: &str, url: &str) -> Decision {
        decide(host, manifest, method, &url::Url::parse(url).unwrap())
    }

    #[test]
    fn a_request_needs_both_halves_and_no_deny() {
        let host = HostRules {
            allow: rules(&["*.github.com", "hooks.slack.com", "http://127.0.0.1:*"]),
            deny: rules(&["evil.github.com"]),
            allow_private: Vec::new(),
        };
        let manifest = ManifestRules {
            allow: rules(&["api.github.com", "evil.github.com", "http://127.0.0.1:*"]),
            methods: vec!["GET".into(), "POST".into()],
        };
        let d = decision(&host, &manifest, "GET", "https://api.github.com/repos/x");
        assert_eq!(
            d,
            Decision::Allowed {
                host_rule: "*.github.com".into(),
                manifest_rule: "api.github.com".into()
            }
        );
        assert!(decision(&host, &manifest, "POST", "http://127.0.0.1:9999/x").is_allowed());
        // The host allows it, the manifest does not name it.
        assert!(!decision(&host, &manifest, "GET", "https://hooks.slack.com/x").is_allowed());
        // Denied by the host although both allow it.
        let d = decision(&host, &manifest, "GET", "https://evil.github.com/");
        assert!(matches!(d, Decision::Denied { reason } if reason.contains("deny")));
        // `*.github.com` is not `github.com`; another port, scheme or method.
        assert!(!decision(&host, &manifest, "GET", "https://github.com/").is_allowed());
        assert!(!decision(&host, &manifest, "GET", "https://api.github.com:8443/").is_allowed());
        assert!(!decision(&host, &manifest, "GET", "http://api.github.com/").is_allowed());
        assert!(!decision(&host, &manifest, "DELETE", "https://api.github.com/").is_allowed());
        assert!(!decision(&host, &manifest, "GET", "ftp://api.github.com/").is_allowed());
        // Default deny.
        let none = HostRules::default();
        assert!(!decision(&none, &manifest, "GET", "https://api.github.com/").is_allowed());
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "", "ftp://x", "a/b", "*x.com", "a.*.com", "x:port", "user@x", "[::1",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Rule::parse("[::1]:8080").is_ok());
    }

    #[test]
    fn restricted_addresses_need_an_explicit_range() {
        let host = HostRules::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(host.address_allowed(ip.parse().unwrap()).is_err(), "{ip}");
        }
        assert!(
            host.address_allowed("93.184.216.34".parse().unwrap())
                .is_ok()
        );
        assert!(
            host.address_allowed("2606:2800:220:1::".parse().unwrap())
                .is_ok()
        );
        let loopback = HostRules {
            allow_private: vec!["127.0.0.0/8".parse().unwrap()],
            ..HostRules::default()
        };
        assert!(
            loopback
                .address_allowed("127.0.0.1".parse().unwrap())
                .is_ok()
        );
        assert!(
            loopback
                .address_allowed("::ffff:127.0.0.1".parse().unwrap())
                .is_ok()
        );
        assert!(
            loopback
                .address_allowed("169.254.169.254".parse().unwrap())
                .is_err()
        );
    }
}
