//! Where secret values come from: the host's environment
//! (`RUNWAY_SECRET_<NAME>`) first, then `secrets.toml` in the data directory.
//!
//! The environment prefix keeps a guest from naming arbitrary host variables
//! (`PATH`, `AWS_...`): only what the operator exported for Runway is a secret.

use std::collections::HashMap;
use std::path::Path;

/// Prefix of environment variables that hold secrets.
pub const ENV_PREFIX: &str = "RUNWAY_SECRET_";
/// File name of the optional secrets file in the data directory.
pub const FILE_NAME: &str = "secrets.toml";

/// The secrets file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SecretsFileError {
    path: String,
    message: String,
}

/// The host's secret values. Values are never logged: `Debug` shows names only.
#[derive(Clone)]
pub struct SecretSource {
    file: HashMap<String, String>,
    /// Whether `RUNWAY_SECRET_<NAME>` variables count (not in a test
    /// harness, whose secrets are only the scripted ones).
    env: bool,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSource")
            .field("file_names", &self.file.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretSource {
    /// Loads `secrets.toml` from `data_dir` if it exists: a flat table of
    /// `NAME = "value"`.
    pub fn load(data_dir: &Path) -> Result<SecretSource, SecretsFileError> {
        let path = data_dir.join(FILE_NAME);
        let err = |message: String| SecretsFileError {
            path: path.display().to_string(),
            message,
        };
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_shared(&path);
                // Don't echo the parser's message: it quotes the offending line.
                let table: toml::Table = toml::from_str(&text).map_err(|e| {
                    let at = e
                        .span()
                        .map(|s| format!(" near byte {}", s.start))
                        .unwrap_or_default();
                    err(format!("not valid TOML{at}"))
                })?;
                let mut map = HashMap::new();
                for (k, v) in table {
                    match v {
                        toml::Value::String(s) => {
                            map.insert(k, s);
                        }
                        _ => return Err(err(format!("{k}: expected a string value"))),
                    }
                }
                map
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(SecretSource { file, env: true })
    }

    /// These values and no others: the environment is not read.
    pub fn fixed(values: HashMap<String, String>) -> SecretSource {
        SecretSource {
            file: values,
            env: false,
        }
    }

    /// The value of secret `name`, if the host has one.
    pub fn get(&self, name: &str) -> Option<String> {
        self.env
            .then(|| std::env::var(env_name(name)).ok())
            .flatten()
            .or_else(|| self.file.get(name).cloned())
    }
}

/// Secrets readable by other users are still used, but said loudly.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the secrets file is readable by other users; chmod 600 it"
            );
        }
    }
}

/// The environment variable that holds secret `name`.
pub fn env_name(name: &str) -> String {
    let mut s = String::with_capacity(ENV_PREFIX.len() + name.len());
    s.push_str(ENV_PREFIX);
    s.extend(name.chars().map(|c| c.to_ascii_uppercase()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secrets_load_and_env_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "unit_test_token = \"from-file\"\nother = \"o\"\n",
        )
        .unwrap();
        let s = SecretSource::load(dir.path()).unwrap();
        assert_eq!(s.get("other").as_deref(), Some("o"));
        assert_eq!(s.get("missing"), None);
        assert_eq!(env_name("unit_test_token"), "RUNWAY_SECRET_UNIT_TEST_TOKEN");
    }

    #[test]
    fn a_bad_secrets_file_does_not_echo_its_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "k = hunter2-unquoted\n").unwrap();
        let e = SecretSource::load(dir.path()).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
