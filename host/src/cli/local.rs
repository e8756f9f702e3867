//! Commands in embedded mode: this process is the host, on the data directory.

use super::*;

pub(super) async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Serve { .. } = &cli.command {
        return serve(&cli).await;
    }
    // Authoring needs neither a data directory nor a server.
    match &cli.command {
        Command::Dev { path, listen } => {
            let dir = path.clone().unwrap_or_else(|| PathBuf::from("."));
            super::dev::dev(dir, cli.data_dir.clone(), cli.config.clone(), *listen).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Test { path, args } => {
            let dir = path.clone().unwrap_or_else(|| PathBuf::from("."));
            let args = args.clone();
            return tokio::task::spawn_blocking(move || super::author::test(&dir, &args)).await?;
        }
        Command::TestRunner { wasm, args } => {
            return crate::testing::runner::run(wasm, args).await;
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "runway", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::New {
            name,
            template,
            dir,
        } => {
            let at = super::author::new(name, *template, dir.as_deref())?;
            println!("created {} ({template:?} template)", at.display());
            println!(
                "next:
  cd {}
  runway build
  runway deploy dist/{name}.wasm",
                at.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Build { path, json } => {
            let dir = path.clone().unwrap_or_else(|| PathBuf::from("."));
            let built = tokio::task::spawn_blocking(move || super::author::build(&dir)).await??;
            if *json {
                println!("{}", serde_json::to_string(&built)?);
            } else {
                println!(
                    "built {} ({}) beside {}
deploy it with: runway deploy {}",
                    built.wasm.display(),
                    bytesize::ByteSize(built.bytes),
                    built.manifest.display(),
                    built.wasm.display()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    if let Command::Migrate { from_redb, json } = &cli.command {
        let config = super::host_config(&cli)?;
        let Some(url) = config.store_url else {
            anyhow::bail!("runway migrate works on a PostgreSQL store: pass --store postgres://…");
        };
        let out = match from_redb {
            Some(dir) => {
                let copied = crate::store::copy_from_redb(dir, &url)?;
                serde_json::json!({ "layout": crate::store::ensure_layout(&url)?, "copied": copied })
            }
            None => serde_json::json!({ "layout": crate::store::ensure_layout(&url)? }),
        };
        if *json {
            println!("{out}");
        } else {
            println!("the database is at layout {}", out["layout"]);
            if let Some(c) = out.get("copied") {
                println!(
                    "copied {} workflow versions, {} runs, {} events, {} artifacts ({} bodies)",
                    c["workflows"], c["runs"], c["events"], c["artifacts"], c["blobs"]
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Mcp { action } = &cli.command {
        return super::mcp::mcp(&cli, action).await;
    }
    if let Some(server) = &cli.server {
        return remote(&cli, server).await;
    }
    if let Command::Models { json } = &cli.command {
        // Needs only the config, not the data directory (a server may hold it).
        let mut config = HostConfig::new(&cli.data_dir);
        if let Some(path) = &cli.config {
            config = config.apply_file(path)?;
        }
        let models = crate::models::Models::new(&config.models).map_err(anyhow::Error::msg)?;
        print_models(&models.list(), *json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Doctor { repair, json } = &cli.command {
        // Works on the file, not through a host: a damaged store may not open.
        let c = crate::store::doctor(&cli.data_dir, *repair)?;
        if *json {
            println!("{}", serde_json::to_string(&c)?);
        } else {
            let state = match (c.intact, c.repaired) {
                (true, _) => "intact",
                (false, true) => "damaged, and repaired",
                (false, false) => "damaged",
            };
            println!("{}: {state}", c.file.display());
            println!("{} runs readable, {} unreadable", c.runs, c.unreadable_runs);
            if let Some(b) = &c.backup {
                println!("the file before the repair: {}", b.display());
            }
            if !c.intact && !c.repaired {
                println!(
                    "repair it with `runway doctor --repair` (which keeps a copy), or restore a backup"
                );
            }
        }
        return Ok(if c.intact || c.repaired {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if let Command::Ready = &cli.command {
        anyhow::bail!("runway ready asks a server: pass --server URL (or RUNWAY_SERVER)");
    }
    if let Command::Audit { .. } = &cli.command {
        anyhow::bail!(
            "runway audit reads a server's audit trail (of its API requests): pass --server URL (or RUNWAY_SERVER)"
        );
    }
    if let Command::Events { follow: true, .. } = &cli.command {
        anyhow::bail!(
            "--follow tails a server's event stream: pass --server URL (or RUNWAY_SERVER)"
        );
    }
    // A command that only reads never creates a data directory: a typo in
    // --data-dir (or a missing --server) is said, not answered with nothing.
    let reads_only = matches!(
        cli.command,
        Command::Runs { .. }
            | Command::Show { .. }
            | Command::Artifacts { .. }
            | Command::Events { .. }
            | Command::Approvals { .. }
            | Command::Approve { .. }
            | Command::Workflows { .. }
            | Command::Verify { .. }
            | Command::Backup { .. }
            | Command::Purge { .. }
            | Command::Delete { .. }
    );
    if reads_only && cli.store.is_none() && !cli.data_dir.join("runway.redb").exists() {
        anyhow::bail!(
            "no runway data directory at {}: nothing was deployed here (use --data-dir DIR, or --server URL to ask a server)",
            cli.data_dir.display()
        );
    }
    let host = open(&cli).await?;
    let code = match &cli.command {
        Command::Deploy {
            wasm,
            manifest,
            verify,
            json,
        } => {
            let d = if *verify {
                let (bytes, toml) = super::remote::read_deploy(wasm, manifest.manifest.as_deref())?;
                host.deploy_verified(bytes, &toml, 100).await?
            } else {
                deploy(&host, wasm, manifest.manifest.as_deref()).await?
            };
            if *json {
                println!("{}", serde_json::to_string(&d)?);
            } else {
                println!(
                    "deployed {} v{} (sha256:{})",
                    d.slug,
                    d.version,
                    &d.digest[..12]
                );
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            slug,
            run,
            version,
            detach: true,
        } => {
            let input = read_input(run.input.as_deref())?;
            let id = host.enqueue(slug, *version, input).await?;
            if run.json {
                println!("{}", json!({ "run_id": id, "status": "queued" }));
            } else {
                println!("{id}");
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            slug,
            run,
            version,
            detach: false,
        } => {
            let input = read_input(run.input.as_deref())?;
            let id = host.start_version(slug, *version, input).await?;
            let record = until_settled(&host, id).await?;
            print_run(&record, run.json, None)?
        }
        Command::Serve { .. }
        | Command::Doctor { .. }
        | Command::New { .. }
        | Command::Build { .. }
        | Command::Completions { .. }
        | Command::Test { .. }
        | Command::TestRunner { .. }
        | Command::Ready
        | Command::Audit { .. }
        | Command::Mcp { .. }
        | Command::Migrate { .. }
        | Command::Dev { .. } => unreachable!("handled above"),
        Command::Resume { json } => {
            let ids: Vec<RunId> = host.active_runs()?.iter().map(|r| r.id).collect();
            host.recover().await?;
            host.idle().await;
            let mut runs = Vec::with_capacity(ids.len());
            for id in ids {
                runs.push(host.run_record(id).await?);
            }
            if *json {
                let list: Vec<_> = runs.iter().map(run_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if runs.is_empty() {
                eprintln!("nothing to resume");
            } else {
                print_runs(&runs);
            }
            ExitCode::SUCCESS
        }
        Command::Rerun {
            run_id,
            input,
            latest,
            detach,
            json,
        } => {
            let input = input.as_deref().map(|i| read_input(Some(i))).transpose()?;
            let by = crate::types::Trigger::local().by;
            let started = host.rerun(*run_id, input, *latest, by).await?;
            settle_started(&host, started.id, *detach, *json).await?
        }
        Command::Reset {
            run_id,
            to,
            detach,
            json,
        } => {
            let by = crate::types::Trigger::local().by;
            let started = host
                .reset(*run_id, *to, by)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            settle_started(&host, started.id, *detach, *json).await?
        }
        Command::Cancel { run_id, json } => {
            let outcome = host
                .cancel_as(*run_id, Some(crate::types::Trigger::local().by))
                .await?;
            let record = host.wait(*run_id).await?;
            if *json {
                println!(
                    "{}",
                    json!({ "run_id": run_id, "outcome": outcome, "status": record.status })
                );
            } else {
                match outcome {
                    CancelOutcome::AlreadyEnded(s) => eprintln!("{run_id} had already ended ({s})"),
                    _ => eprintln!("{run_id} {}", record.status),
                }
            }
            ExitCode::SUCCESS
        }
        Command::Signal {
            run_id,
            name,
            data,
            id,
            json,
        } => {
            let payload = read_signal_data(data.as_deref())?;
            let receipt = host
                .signal_as(
                    *run_id,
                    name,
                    payload,
                    id.clone(),
                    Some(crate::types::Trigger::local().by),
                )
                .await?;
            host.resume(*run_id);
            let record = until_done_or_idle(&host, *run_id).await?;
            if *json {
                println!(
                    "{}",
                    json!({
                        "run_id": run_id,
                        "signal_seq": receipt.seq,
                        "duplicate": receipt.duplicate,
                        "status": record.status,
                    })
                );
            } else {
                if receipt.duplicate {
                    eprintln!("signal id already delivered (#{}); dropped", receipt.seq);
                } else {
                    eprintln!("delivered {name} (#{})", receipt.seq);
                }
                print_run(&record, false, None)?;
            }
            ExitCode::SUCCESS
        }
        Command::Approvals {
            status,
            workflow,
            run_id,
            mine,
            limit,
            json,
        } => {
            if *mine {
                eprintln!(
                    "note: --mine asks a server; on a data directory every approval is yours"
                );
            }
            if let Some(id) = run_id
                && host.status(*id)?.is_none()
            {
                return Err(HostError::RunNotFound(*id).into());
            }
            let filter = crate::store::ApprovalFilter {
                status: status.map(ApprovalState::as_str),
                workflow: workflow.as_deref(),
                run: *run_id,
                before: None,
            };
            let approvals = host.store().approvals(&filter, *limit, |_| true)?;
            print_approvals(&approvals, *json)?;
            ExitCode::SUCCESS
        }
        Command::Approve {
            run_id,
            name,
            choice,
            comment,
            json,
        } => {
            let by = crate::types::Trigger::local().by;
            let (decision, duplicate) = host
                .decide(*run_id, name, choice.choice(), comment.clone(), &by, |_| {
                    true
                })
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            // Let the run take the decision and go on, as `signal` does.
            if host.status(*run_id)?.is_some_and(|s| !s.is_terminal()) {
                host.resume(*run_id);
            }
            let record = until_done_or_idle(&host, *run_id).await?;
            let decided = super::client::Decided {
                decision,
                duplicate,
            };
            print_decided(*run_id, name, &decided, Some(record.status), *json)?;
            if !*json {
                print_run(&record, false, None)?;
            }
            ExitCode::SUCCESS
        }
        Command::Exec {
            wasm,
            manifest,
            run,
        } => {
            let input = read_input(run.input.as_deref())?;
            let d = deploy(&host, wasm, manifest.manifest.as_deref()).await?;
            let id = host.start_version(&d.slug, Some(d.version), input).await?;
            let record = until_settled(&host, id).await?;
            print_run(&record, run.json, None)?
        }
        Command::Runs {
            status,
            workflow,
            limit,
            json,
            output,
        } => {
            let runs = host.runs(
                &crate::host::RunFilter {
                    status: *status,
                    workflow: workflow.as_deref(),
                    ..Default::default()
                },
                *limit,
            )?;
            let list: Vec<_> = runs.iter().map(record_json).collect();
            Format::of(*json, *output).print(&list, || print_runs(&runs))?;
            ExitCode::SUCCESS
        }
        Command::Events {
            run_id,
            json,
            output,
            ..
        } => {
            if host.status(*run_id)?.is_none() {
                return Err(HostError::RunNotFound(*run_id).into());
            }
            let events = host.events(*run_id, 0, usize::MAX)?;
            Format::of(*json, *output).print(&events, || print_events(&events))?;
            ExitCode::SUCCESS
        }
        Command::Show { run_id, json } => {
            let shown = show(&host, *run_id).await?;
            print_show(&shown, *json, None)?
        }
        Command::Artifacts {
            run_id,
            name: None,
            json,
            ..
        } => {
            host.run_record(*run_id).await?;
            print_artifacts(&host.artifacts(*run_id)?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Artifacts {
            run_id,
            name: Some(name),
            output,
            json,
        } => {
            let to = artifact_target(output.as_deref(), *json)?;
            host.run_record(*run_id).await?;
            let (meta, body) = host.artifact(*run_id, name).await?;
            match to {
                Some(path) => std::fs::write(path, &body)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
                None => {
                    let mut out = std::io::stdout().lock();
                    std::io::Write::write_all(&mut out, &body)?;
                    std::io::Write::flush(&mut out)?;
                }
            }
            print_downloaded(&meta, to, *json)?;
            ExitCode::SUCCESS
        }
        Command::Models { json } => {
            print_models(&host.models(), *json)?;
            ExitCode::SUCCESS
        }
        Command::Cron {
            slug,
            pause,
            resume,
            fire,
            json,
        } => {
            if let Some(i) = pause {
                host.pause_cron(slug, *i, true).await?;
            }
            if let Some(i) = resume {
                host.pause_cron(slug, *i, false).await?;
            }
            if let Some(i) = fire {
                let started = host.fire_cron(slug, *i).await?;
                eprintln!("queued {}; `runway resume` executes it", started.id);
            }
            print_cron(&host.cron_triggers(slug)?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Verify {
            slug,
            wasm,
            runs,
            json,
        } => {
            let bytes = std::fs::read(wasm)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", wasm.display()))?;
            let verdicts = host.verify(slug, bytes, *runs).await?;
            print_verdicts(&verdicts, *json)?;
            if verdicts
                .iter()
                .all(|v| v.outcome == crate::host::Outcome::Same)
            {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Delete { run_id, json } => {
            let runs = host.delete_run(*run_id).await?;
            print_deleted(*run_id, runs, *json);
            ExitCode::SUCCESS
        }
        Command::Purge {
            older_than,
            keep_per_workflow,
            workflow,
            dry_run,
            json,
        } => {
            let request = purge_request(older_than, *keep_per_workflow, workflow, *dry_run);
            print_purge(&host.purge(&request).await?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Backup { path, json } => {
            let report = host.backup(path.clone()).await?;
            print_backup(path, &report, *json)?;
            ExitCode::SUCCESS
        }
        Command::Workflows { json } => {
            let wfs = host.workflows()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&wfs)?);
            } else {
                print_workflows(&wfs);
            }
            ExitCode::SUCCESS
        }
    };
    // Durable, and closed cleanly so the data directory opens next time
    // without a repair; runs still parked resume with `runway resume`.
    host.shutdown().await?;
    Ok(code)
}

/// Waits until run `id` ends, or until nothing can progress without
/// outside input (then the run is shown as it stands, e.g. waiting for a
/// signal).
/// Waits until run `id` ends, waits for a signal (only someone else can
/// wake it, even if its wait has a timeout), or nothing can progress.
pub(super) async fn until_settled(host: &Host, id: RunId) -> anyhow::Result<RunRecord> {
    tokio::select! {
        r = host.wait_settled(id) => Ok(r?),
        () = host.idle() => Ok(host.run_record(id).await?),
    }
}

/// What `runway show` prints of run `id`, read from this host.
async fn show(host: &Host, id: RunId) -> anyhow::Result<Shown> {
    let record = host.run_record(id).await?;
    let ids = host.children(id)?;
    let mut children = Vec::with_capacity(ids.len());
    for child in &ids {
        children.push(ChildSummary::of(&host.run_record(*child).await?));
    }
    Ok(Shown {
        view: run_view(&record, &ids),
        artifacts: host.artifacts(id)?,
        record,
        children,
    })
}

/// A run this command started: its id (`detach`), or the run once it
/// has ended or waits for someone.
async fn settle_started(
    host: &Host,
    id: RunId,
    detach: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if detach {
        host.flush().await?;
        if json {
            println!("{}", json!({ "run_id": id }));
        } else {
            println!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let record = until_settled(host, id).await?;
    print_run(&record, json, None)
}

pub(super) async fn until_done_or_idle(host: &Host, id: RunId) -> anyhow::Result<RunRecord> {
    tokio::select! {
        r = host.wait(id) => Ok(r?),
        () = host.idle() => Ok(host.run_record(id).await?),
    }
}

pub(super) async fn deploy(
    host: &Host,
    wasm: &Path,
    manifest: Option<&Path>,
) -> anyhow::Result<crate::Deployment> {
    let (bytes, toml) = read_deploy(wasm, manifest)?;
    Ok(host.deploy(bytes, &toml).await?)
}

/// `--data` of a signal: JSON or @FILE; none is `null`.
pub(super) fn read_signal_data(arg: Option<&str>) -> anyhow::Result<serde_json::Value> {
    match arg {
        Some(d) => read_input(Some(d)),
        None => Ok(serde_json::Value::Null),
    }
}

pub(super) fn read_input(arg: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let text = match arg {
        None => return Ok(json!({})),
        Some(a) => match a.strip_prefix('@') {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?
            }
            None => a.to_owned(),
        },
    };
    Ok(parse_input(&text)?)
}
