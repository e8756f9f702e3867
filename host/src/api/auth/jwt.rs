//! JWT bearer tokens from an identity provider: HS256 with a host secret,
//! RS256 and ES256 with public keys from a JWKS file or URL (cached; a URL
//! is fetched again every `jwks_refresh`, and on a `kid` it does not know
//! at most every 30 s). `iss`, `aud`, `exp` and `nbf` are checked with
//! the configured clock skew; the principal is a claim (`sub` by default),
//! its scopes another (`scope`: a space-separated string or an array),
//! mapped to Runway's scopes.

use super::Principal;
use crate::config::{Grants, JwtConfig};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The least time between two JWKS fetches for an unknown `kid`.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// A public key from a JWKS, with the algorithm it verifies.
struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

pub(super) struct Verifier {
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    subject_claim: String,
    scopes_claim: String,
    scope_map: BTreeMap<String, String>,
    hs256: Option<DecodingKey>,
    /// From `jwks_file`, for good.
    file_keys: Vec<PublicKey>,
    /// From `jwks_url`, as last fetched.
    url_keys: RwLock<Vec<PublicKey>>,
    url: Option<String>,
    refresh_every: Duration,
    /// When the URL was last fetched (tried).
    fetched: RwLock<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

fn duration(field: &str, v: &Option<String>, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| format!("server.jwt.{field}: {s:?} is not a duration ({e})")),
    }
}

/// The keys of a JWKS document that verify RS256 or ES256 (P-256).
fn public_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut out = Vec::new();
    for jwk in &set.keys {
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p)
                if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            // Symmetric keys never come from a JWKS here, nor other curves.
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("a key does not load: {e}"))?;
        out.push(PublicKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    Ok(out)
}

impl Verifier {
    pub(super) fn new(
        c: &JwtConfig,
        secret: &impl Fn(&str) -> Option<String>,
    ) -> Result<Verifier, String> {
        let hs256 = match &c.hs256_secret {
            Some(name) => {
                let value = secret(name).ok_or_else(|| {
                    format!("server.jwt.hs256_secret: no host secret {name:?} (secrets.toml or RUNWAY_SECRET_{name})")
                })?;
                if value.len() < 32 {
                    return Err("server.jwt.hs256_secret: the key must be at least 32 bytes".into());
                }
                Some(
                    DecodingKey::from_secret(value.as_bytes())
                        .map_err(|e| format!("server.jwt.hs256_secret: {e}"))?,
                )
            }
            None => None,
        };
        let file_keys = match &c.jwks_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("server.jwt.jwks_file {}: {e}", path.display()))?;
                public_keys(&text)
                    .map_err(|e| format!("server.jwt.jwks_file {}: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        Ok(Verifier {
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            leeway: duration("leeway", &c.leeway, Duration::from_secs(60))?.as_secs(),
            subject_claim: c.subject_claim.clone().unwrap_or_else(|| "sub".into()),
            scopes_claim: c.scopes_claim.clone().unwrap_or_else(|| "scope".into()),
            scope_map: c.scope_map.clone(),
            hs256,
            file_keys,
            url_keys: RwLock::new(Vec::new()),
            url: c.jwks_url.clone(),
            refresh_every: duration("jwks_refresh", &c.jwks_refresh, Duration::from_secs(300))?,
            fetched: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| e.to_string())?,
        })
    }

    /// Fetches the JWKS URL (if any) and keeps its keys; a failure keeps
    /// the keys it had.
    pub(super) async fn refresh(&self) {
        let Some(url) = &self.url else { return };
        let Ok(_one) = self.fetching.try_lock() else {
            return;
        };
        *self.fetched.write() = Some(Instant::now());
        let fetched = async {
            let res = self.http.get(url).send().await.map_err(|e| e.to_string())?;
            if !res.status().is_success() {
                return Err(format!("HTTP {}", res.status()));
            }
            let text = res.text().await.map_err(|e| e.to_string())?;
            public_keys(&text)
        };
        match fetched.await {
            Ok(keys) => *self.url_keys.write() = keys,
            Err(e) => {
                tracing::warn!(url, error = %e, "could not fetch the JWKS; the keys held are kept")
            }
        }
    }

    fn due(&self, every: Duration) -> bool {
        self.url.is_some() && self.fetched.read().is_none_or(|t| t.elapsed() >= every)
    }

    /// The principal a token names, or why it is refused.
    pub(super) async fn verify(&self, token: &str) -> Result<Principal, String> {
        let header = decode_header(token).map_err(|e| e.to_string())?;
        if self.due(self.refresh_every) {
            self.refresh().await;
        }
        let key = match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or("HS256 tokens are not accepted here")?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let fits = |k: &&PublicKey| {
                    k.alg == header.alg && (header.kid.is_none() || k.kid == header.kid)
                };
                let find = || {
                    let url_keys = self.url_keys.read();
                    self.file_keys
                        .iter()
                        .chain(url_keys.iter())
                        .find(fits)
                        .map(|k| k.key.clone())
                };
                match find() {
                    Some(k) => k,
                    None if self.due(REFETCH_AT_MOST_EVERY) => {
                        self.refresh().await;
                        find().ok_or("no key for it")?
                    }
                    None => return Err("no key for it".into()),
                }
            }
            other => return Err(format!("{other:?} is not accepted")),
        };
        let mut v = Validation::new(header.alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        let data = decode::<serde_json::Value>(token, &key, &v).map_err(|e| e.to_string())?;
        let claims = data.claims;
        let subject = claims
            .get(&self.subject_claim)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| format!("no {:?} claim naming the principal", self.subject_claim))?;
        let written: Vec<String> = match claims.get(&self.scopes_claim) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => return Err(format!("the {:?} claim is not scopes", self.scopes_claim)),
        };
        // Claim values the map names become its scopes; others are read as
        // Runway scopes, and those that are not are ignored (an identity
        // provider's tokens carry scopes for other services too).
        let mut grants = Grants::default();
        for item in written {
            let mapped = self.scope_map.get(&item).cloned().unwrap_or(item);
            if let Ok(g) = mapped.parse::<Grants>() {
                grants.0.extend(g.0);
            }
        }
        Ok(Principal {
            kind: "jwt",
            id: Some(subject.to_owned()),
            scopes: grants,
        })
    }
}
