//! `runway dev`: serve on loopback, build and deploy a workflow crate,
//! then rebuild and redeploy it whenever its sources change. Each deploy
//! is a new version; runs already started keep theirs.

use super::author;
use crate::config::{HostConfig, ServerSettings};
use crate::host::Host;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the sources are looked at.
const POLL: Duration = Duration::from_millis(250);

/// Runs `runway dev` on the crate at `dir` until Ctrl-C or SIGTERM.
pub(super) async fn dev(
    dir: PathBuf,
    data_dir: PathBuf,
    config: Option<PathBuf>,
    listen: std::net::SocketAddr,
) -> anyhow::Result<()> {
    if !crate::api::is_loopback(&listen) {
        anyhow::bail!("runway dev listens on loopback only (got {listen})");
    }
    let mut host_config = HostConfig::new(&data_dir);
    if let Some(path) = &config {
        host_config = host_config.apply_file(path)?;
    }
    // The first build before anything listens: a crate that does not build
    // is said at once.
    let first = build(&dir).await?;
    let host = Host::open(host_config).await?;
    host.recover().await?;
    let slug = deploy(&host, &first).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {listen}: {e}"))?;
    let address = listener.local_addr()?;
    println!(
        "serving on http://{address} (data in {})",
        data_dir.display()
    );
    println!(
        "trigger:  curl -X POST 'http://{address}/v1/workflows/{slug}/runs?wait=30' -H 'content-type: application/json' -d '{{}}'"
    );
    println!("watching {} for changes (Ctrl-C stops)", dir.display());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cron = tokio::spawn(crate::triggers::cron::run(host.clone(), stop_rx.clone()));
    let watcher = tokio::spawn(watch(host.clone(), dir.clone(), stop_rx));
    let settings = ServerSettings {
        listen: address,
        ..ServerSettings::default()
    };
    let shutdown = async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        let _ = stop_tx.send(true);
    };
    crate::api::serve(host, settings, listener, shutdown).await?;
    let _ = cron.await;
    let _ = watcher.await;
    Ok(())
}

/// Rebuilds and redeploys whenever the sources change, until `stop`.
async fn watch(host: Host, dir: PathBuf, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut seen = author::sources_changed_at(&dir);
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
        let now = author::sources_changed_at(&dir);
        if now == seen {
            continue;
        }
        seen = now;
        let started = Instant::now();
        match build(&dir).await {
            Ok(built) => match deploy(&host, &built).await {
                Ok(_) => println!(
                    "redeployed {} in {:.1} s",
                    built.slug,
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => eprintln!("deploy failed: {e:#}"),
            },
            // The previous version stays deployed; cargo said why above.
            Err(e) => eprintln!("{e:#}; still serving the previous version"),
        }
    }
}

async fn build(dir: &Path) -> anyhow::Result<author::Built> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || author::build(&dir)).await?
}

/// Deploys what was built; prints the version. Returns the slug.
async fn deploy(host: &Host, built: &author::Built) -> anyhow::Result<String> {
    let wasm = std::fs::read(&built.wasm)?;
    let manifest = std::fs::read_to_string(&built.manifest)?;
    let d = host.deploy(wasm, &manifest).await?;
    println!("deployed {} v{}", d.slug, d.version);
    Ok(d.slug)
}
