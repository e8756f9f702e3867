//! Commands against a `runway serve` (`--server`), over its HTTP API.

use super::*;

/// The commands against a server (`--server`).
pub(super) async fn remote(cli: &Cli, server: &str) -> anyhow::Result<ExitCode> {
    let client = crate::cli::client::Client::new(server, cli.token.clone())?;
    let poll = std::time::Duration::from_millis(100);
    Ok(match &cli.command {
        Command::Ready => match client.ready().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("not ready: {e}");
                ExitCode::from(1)
            }
        },
        Command::Deploy {
            wasm,
            manifest,
            verify,
            json,
        } => {
            let (bytes, toml) = read_deploy(wasm, manifest.manifest.as_deref())?;
            let slug = crate::Manifest::parse(&toml)?.slug;
            let d = client.deploy(&slug, bytes, toml, *verify).await?;
            if *json {
                println!("{d}");
            } else {
                println!(
                    "deployed {} v{} (sha256:{})",
                    d["slug"].as_str().unwrap_or(""),
                    d["version"],
                    d["digest"].as_str().unwrap_or("").get(..12).unwrap_or("")
                );
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            slug,
            run,
            version,
            detach,
        } => {
            if version.is_some() {
                anyhow::bail!(
                    "--version is not available with --server: a server runs the newest version"
                );
            }
            let input = read_input(run.input.as_deref())?;
            let wait = if *detach { None } else { Some(30.0) };
            let mut record = client.start(slug, &input, wait, None).await?;
            if *detach {
                if run.json {
                    println!(
                        "{}",
                        json!({ "run_id": record.id, "status": record.status })
                    );
                } else {
                    println!("{}", record.id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !record.status.is_terminal()
                && !matches!(
                    record.status,
                    RunStatus::WaitingSignal | RunStatus::WaitingApproval
                )
            {
                record = client.wait(record.id, poll).await?;
            }
            print_run(&record, run.json, Some(server))?
        }
        Command::Runs {
            status,
            workflow,
            limit,
            json,
            output,
        } => {
            let runs = client.runs(*status, workflow.as_deref(), *limit).await?;
            let list: Vec<_> = runs.iter().map(record_json).collect();
            Format::of(*json, *output).print(&list, || print_runs(&runs))?;
            ExitCode::SUCCESS
        }
        Command::Events {
            run_id,
            json,
            output,
            follow: true,
        } => {
            // A stream has no array: JSON is one event per line.
            let lines = Format::of(*json, *output) != Format::Text;
            let mut header = !lines;
            client
                .follow(*run_id, 0, |e| {
                    if lines {
                        println!("{}", serde_json::to_string(e).unwrap_or_default());
                    } else {
                        if std::mem::take(&mut header) {
                            println!("{}", follow_line("SEQ", "TIME", "KIND", "DETAIL"));
                        }
                        println!(
                            "{}",
                            follow_line(
                                &e.seq.to_string(),
                                &short_time(&e.at),
                                e.body.kind(),
                                &event_detail(&e.body)
                            )
                        );
                    }
                })
                .await?;
            ExitCode::SUCCESS
        }
        Command::Events {
            run_id,
            json,
            output,
            ..
        } => {
            let events = client.events(*run_id).await?;
            Format::of(*json, *output).print(&events, || print_events(&events))?;
            ExitCode::SUCCESS
        }
        Command::Show { run_id, json } => {
            let shown = show(&client, *run_id).await?;
            print_show(&shown, *json, Some(server))?
        }
        Command::Artifacts {
            run_id,
            name: None,
            json,
            ..
        } => {
            print_artifacts(&client.artifacts(*run_id).await?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Artifacts {
            run_id,
            name: Some(name),
            output,
            json,
        } => {
            let to = artifact_target(output.as_deref(), *json)?;
            // Known before anything is written: an unknown run or name
            // leaves no empty file behind.
            let Some(meta) = client
                .artifacts(*run_id)
                .await?
                .into_iter()
                .find(|a| a.name == *name)
            else {
                return Err(HostError::ArtifactNotFound(*run_id, name.clone()).into());
            };
            match to {
                Some(path) => {
                    let mut file = create_output(path)?;
                    if let Err(e) = client.download(*run_id, name, &mut file).await {
                        drop(file);
                        let _ = std::fs::remove_file(path);
                        return Err(e.into());
                    }
                }
                None => {
                    client
                        .download(*run_id, name, &mut std::io::stdout().lock())
                        .await?;
                }
            }
            print_downloaded(&meta, to, *json)?;
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
            let record = client.rerun(*run_id, input, *latest).await?;
            settle_started(&client, record, *detach, *json, poll, server).await?
        }
        Command::Reset {
            run_id,
            to,
            detach,
            json,
        } => {
            let record = client.reset(*run_id, *to).await?;
            settle_started(&client, record, *detach, *json, poll, server).await?
        }
        Command::Cancel { run_id, json } => {
            let v = client.cancel(*run_id).await?;
            if *json {
                println!("{v}");
            } else {
                eprintln!("{run_id} {}", v["status"].as_str().unwrap_or(""));
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
            let v = client
                .signal(*run_id, name, &payload, id.as_deref())
                .await?;
            if *json {
                println!("{v}");
            } else if v["duplicate"] == true {
                eprintln!("signal id already delivered (#{}); dropped", v["seq"]);
            } else {
                eprintln!("delivered {name} (#{})", v["seq"]);
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
            let query = super::client::ApprovalQuery {
                status: status.map(ApprovalState::as_str),
                workflow: workflow.as_deref(),
                run: *run_id,
                mine: *mine,
            };
            print_approvals(&client.approvals(&query, *limit).await?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Approve {
            run_id,
            name,
            choice,
            comment,
            json,
        } => {
            let decided = client
                .decide(*run_id, name, &choice.choice(), comment.as_deref())
                .await?;
            print_decided(*run_id, name, &decided, None, *json)?;
            ExitCode::SUCCESS
        }
        Command::Audit {
            limit,
            before,
            json,
        } => {
            let (entries, next) = client.audit(*limit, *before).await?;
            print_audit(&entries, next, *json)?;
            ExitCode::SUCCESS
        }
        Command::Workflows { json } => {
            let wfs = client.workflows().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&wfs)?);
            } else {
                print_workflows(&wfs);
            }
            ExitCode::SUCCESS
        }
        Command::Models { json } => {
            print_models(&client.models().await?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Cron {
            slug,
            pause,
            resume,
            fire,
            json,
        } => {
            for (index, action) in [(pause, "pause"), (resume, "resume"), (fire, "fire")] {
                if let Some(i) = index {
                    let v = client.cron_action(slug, *i, action).await?;
                    if let Some(run) = v.get("run_id").and_then(|r| r.as_str()) {
                        eprintln!("started {run}");
                    }
                }
            }
            print_cron(&client.cron(slug).await?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Delete { run_id, json } => {
            let v = client.delete_run(*run_id).await?;
            let runs = v.get("runs").and_then(|n| n.as_u64()).unwrap_or(0);
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
            print_purge(&client.purge(&request).await?, *json)?;
            ExitCode::SUCCESS
        }
        Command::Backup { path, json } => {
            let report = backup(&client, path).await?;
            print_backup(path, &report, *json)?;
            ExitCode::SUCCESS
        }
        Command::Mcp { .. }
        | Command::New { .. }
        | Command::Build { .. }
        | Command::Completions { .. }
        | Command::Dev { .. }
        | Command::Test { .. }
        | Command::Migrate { .. }
        | Command::TestRunner { .. } => {
            unreachable!("handled before")
        }
        Command::Exec { .. }
        | Command::Resume { .. }
        | Command::Serve { .. }
        | Command::Doctor { .. }
        | Command::Verify { .. } => {
            anyhow::bail!("this command runs on a data directory; drop --server (or RUNWAY_SERVER)")
        }
    })
}

/// Children read at once by `show`: enough to hide the round trips,
/// few enough not to crowd the server.
const CHILD_READS: usize = 8;

/// What `runway show` prints of run `id`, read from the server.
async fn show(client: &super::client::Client, id: RunId) -> anyhow::Result<Shown> {
    use futures_util::{StreamExt, TryStreamExt};
    let view = client.run_view(id).await?;
    let children = futures_util::stream::iter(view.children.iter().copied())
        .map(|child| async move { client.run(child).await.map(|r| ChildSummary::of(&r)) })
        .buffered(CHILD_READS)
        .try_collect()
        .await?;
    Ok(Shown {
        artifacts: client.artifacts(id).await?,
        view: view.json,
        record: view.record,
        children,
    })
}

/// Downloads the server's backup archive and unpacks it into `path` (a
/// new or empty directory).
async fn backup(
    client: &super::client::Client,
    path: &Path,
) -> anyhow::Result<crate::host::BackupReport> {
    let empty = std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none());
    anyhow::ensure!(
        empty,
        "{} is not empty: back up into a new directory",
        path.display()
    );
    std::fs::create_dir_all(path)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    let part = path.join(".backup.tar.part");
    let unpacked = async {
        let mut archive = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&part)?;
        client.backup(&mut archive).await?;
        std::io::Seek::rewind(&mut archive)?;
        tar::Archive::new(archive)
            .unpack(path)
            .map_err(|e| anyhow::anyhow!("unpacking the backup into {}: {e}", path.display()))
    }
    .await;
    let _ = std::fs::remove_file(&part);
    unpacked?;
    crate::host::BackupReport::read(path)
}

/// A component and its manifest from disk.
pub(super) fn read_deploy(
    wasm: &Path,
    manifest: Option<&Path>,
) -> anyhow::Result<(Vec<u8>, String)> {
    let bytes = std::fs::read(wasm).map_err(|e| anyhow::anyhow!("{}: {e}", wasm.display()))?;
    let manifest_path = match manifest {
        Some(p) => p.to_path_buf(),
        None => wasm.with_file_name("runway.toml"),
    };
    let toml = std::fs::read_to_string(&manifest_path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (pass --manifest, or put runway.toml beside the .wasm)",
            manifest_path.display()
        )
    })?;
    Ok((bytes, toml))
}

/// A run the server just started for this command: its id (`detach`), or
/// the run once it has ended or waits for someone.
async fn settle_started(
    client: &super::client::Client,
    record: RunRecord,
    detach: bool,
    json: bool,
    poll: std::time::Duration,
    server: &str,
) -> anyhow::Result<ExitCode> {
    if detach {
        if json {
            println!(
                "{}",
                json!({ "run_id": record.id, "status": record.status })
            );
        } else {
            println!("{}", record.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let record = client.wait(record.id, poll).await?;
    print_run(&record, json, Some(server))
}
