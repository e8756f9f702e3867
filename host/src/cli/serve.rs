//! `runway serve`: the HTTP API, cron and recovery, until SIGTERM or Ctrl-C.

use super::*;

pub(super) async fn serve(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Command::Serve {
        listen,
        body_limit,
        deploy_limit,
        max_queued_runs,
    } = &cli.command
    else {
        anyhow::bail!("not the serve command");
    };
    let mut config = super::host_config(cli)?;
    if let Some(l) = listen {
        config.server.listen = *l;
    }
    if let Some(b) = body_limit {
        config.server.body_limit = b.as_u64();
    }
    if let Some(b) = deploy_limit {
        config.server.deploy_limit = b.as_u64();
    }
    if let Some(n) = max_queued_runs {
        config.server.max_queued_runs = *n;
    }
    if let Ok(list) = std::env::var("RUNWAY_API_TOKENS") {
        config
            .server
            .tokens
            .extend(crate::config::tokens_from_env(&list)?);
    }
    let settings = config.server.clone();
    if !settings.has_auth() && !crate::api::is_loopback(&settings.listen) {
        anyhow::bail!(
            "refusing to listen on {} without authentication: configure [[server.tokens]] (or RUNWAY_API_TOKENS), [server.jwt] or [server.proxy], or listen on loopback",
            settings.listen
        );
    }
    if !settings.has_auth() {
        tracing::warn!("no authentication configured: every request is allowed (loopback only)");
    }
    let host = Host::open(config).await?;
    let resumed = host.recover().await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", settings.listen))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cron = tokio::spawn(crate::triggers::cron::run(host.clone(), stop_rx.clone()));
    let retention = tokio::spawn(host.clone().run_retention(stop_rx));
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        data_dir = %cli.data_dir.display(),
        resumed,
        "runway serving on http://{address} (data {}, {resumed} runs resumed)",
        cli.data_dir.display()
    );
    let shutdown = async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        let _ = stop_tx.send(true);
    };
    crate::api::serve(host, settings, listener, shutdown).await?;
    let _ = cron.await;
    let _ = retention.await;
    tracing::info!("runway stopped");
    Ok(ExitCode::SUCCESS)
}
