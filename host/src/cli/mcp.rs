//! `runway mcp`: the MCP servers of this host's config — list them with
//! their tools and grants, sign in to one with OAuth, forget a grant.
//! Runs where the host runs: the grant goes to its data directory.

use super::{Cli, McpAction, host_config, table};
use crate::host::secrets::SecretSource;
use crate::mcp::oauth::{GrantState, Grants};
use std::process::ExitCode;
use std::time::Duration;

pub(super) async fn mcp(cli: &Cli, action: &McpAction) -> anyhow::Result<ExitCode> {
    if cli.server.is_some() {
        anyhow::bail!(
            "runway mcp works on the host's own config and data directory: run it where the host runs, without --server"
        );
    }
    let config = host_config(cli)?;
    let secrets = SecretSource::load(&config.data_dir)?;
    let grants = Grants::new(&config.data_dir, secrets.clone());
    match action {
        McpAction::List { json } => {
            let egress =
                crate::egress::Egress::new(config.egress.clone()).map_err(anyhow::Error::msg)?;
            let hub = crate::mcp::Mcp::new(&config.mcp, secrets, egress, grants.clone());
            let mut listed = Vec::new();
            for name in hub.names() {
                let c = hub.config(&name).expect("a listed server is configured");
                let at = c
                    .url
                    .clone()
                    .or_else(|| c.command.clone())
                    .unwrap_or_default();
                let auth = match (&c.bearer_secret, &c.oauth) {
                    (Some(s), _) => format!("bearer {s}"),
                    (_, Some(_)) => "oauth".to_owned(),
                    _ => "none".to_owned(),
                };
                let grant = c.oauth.as_ref().map(|_| grants.state(&name));
                let tools = hub.list_tools(&name).await;
                listed.push((name, at, auth, grant, tools));
            }
            if *json {
                let v: Vec<serde_json::Value> = listed
                    .iter()
                    .map(|(name, at, auth, grant, tools)| {
                        serde_json::json!({
                            "name": name,
                            "at": at,
                            "auth": auth,
                            "grant": grant,
                            "tools": tools.as_ref().ok().map(|t| t.iter().map(|t| &t.name).collect::<Vec<_>>()),
                            "error": tools.as_ref().err().map(|e| serde_json::json!({"code": e.code().as_str(), "message": e.to_string()})),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if listed.is_empty() {
                eprintln!(
                    "no MCP servers are configured (add [mcp.servers.NAME] to the host's config)"
                );
            } else {
                let rows = listed
                    .into_iter()
                    .map(|(name, at, auth, grant, tools)| {
                        let grant = match grant {
                            None => "-".to_owned(),
                            Some(GrantState::None) => "none (runway mcp login)".to_owned(),
                            Some(GrantState::Held { scopes, .. }) if scopes.is_empty() => {
                                "held".to_owned()
                            }
                            Some(GrantState::Held { scopes, .. }) => {
                                format!("held ({})", scopes.join(" "))
                            }
                            Some(GrantState::Unreadable) => "unreadable".to_owned(),
                        };
                        let tools = match tools {
                            Ok(t) => t.into_iter().map(|t| t.name).collect::<Vec<_>>().join(", "),
                            Err(e) => format!("{}: {e}", e.code().as_str()),
                        };
                        vec![name, at, auth, grant, tools]
                    })
                    .collect();
                table(&["SERVER", "AT", "AUTH", "GRANT", "TOOLS"], rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        McpAction::Login { name, wait } => {
            let Some(server) = config.mcp.servers.get(name) else {
                anyhow::bail!("no MCP server {name:?} in the host's [mcp.servers]");
            };
            let (Some(url), Some(oauth)) = (&server.url, &server.oauth) else {
                anyhow::bail!("MCP server {name:?} has no `oauth` settings: nothing to sign in to");
            };
            let scopes = grants
                .login(name, url, oauth, Duration::from_secs(*wait), |at| {
                    println!("Open this URL to authorize Runway with {name}:\n{at}");
                    eprintln!(
                        "waiting for the authorization server's redirect (up to {wait} s)..."
                    );
                })
                .await
                .map_err(|e| anyhow::anyhow!("signing in to {name}: {e}"))?;
            println!(
                "signed in to {name}{}; the grant is in {}",
                if scopes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", scopes.join(" "))
                },
                config.data_dir.join("mcp-grants").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        McpAction::Logout { name } => {
            if grants.forget(name)? {
                eprintln!("forgot the grant for {name}");
            } else {
                eprintln!("there was no grant for {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
