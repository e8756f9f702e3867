//! The `runway` command line. In embedded mode the CLI process is the host,
//! on the data directory.
//!
//! Exit codes: 0 when the command (and the run) succeeded, 1 when a run did
//! not complete (it failed, was cancelled, or waits for a signal), 2 when
//! the command itself failed.

use crate::host::{CancelOutcome, Host, parse_input};
use crate::types::{Event, EventBody, RunId, RunRecord, RunStatus, WorkflowVersion};
use crate::{HostConfig, HostError};
use clap::{Args, Parser, Subcommand};
use owo_colors::{OwoColorize, Stream};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "runway",
    version,
    about = "Run durable, sandboxed WebAssembly workflows",
    after_help = "Data lives in --data-dir (default ./.runway). Secrets come from RUNWAY_SECRET_<NAME> or <data-dir>/secrets.toml."
)]
struct Cli {
    /// Data directory (created if missing).
    #[arg(
        long,
        env = "RUNWAY_DATA_DIR",
        default_value = ".runway",
        global = true
    )]
    data_dir: PathBuf,
    /// Host configuration file (runway-host.toml).
    #[arg(long, env = "RUNWAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Talk to a `runway serve` at this URL instead of opening the data
    /// directory (deploy, run, runs, events, cancel, signal, workflows).
    #[arg(long, env = "RUNWAY_SERVER", global = true)]
    server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, env = "RUNWAY_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deploy a component as the next version of its manifest's slug.
    Deploy {
        /// The workflow component (.wasm).
        wasm: PathBuf,
        #[command(flatten)]
        manifest: ManifestArg,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run a deployed workflow and print its output.
    Run {
        slug: String,
        #[command(flatten)]
        run: RunArgs,
        /// Run this version instead of the newest.
        #[arg(long)]
        version: Option<u32>,
        /// Only queue the run and print its id; `runway resume` executes it.
        #[arg(long)]
        detach: bool,
    },
    /// Serve the HTTP API: recovers the data directory (resumes runs, fires
    /// due timers and cron schedules), then serves until SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on (default 127.0.0.1:8686).
        #[arg(long, env = "RUNWAY_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// Largest request body, e.g. "1 MiB" (deploys: --deploy-limit).
        #[arg(long, env = "RUNWAY_BODY_LIMIT")]
        body_limit: Option<bytesize::ByteSize>,
        /// Largest deploy request.
        #[arg(long, env = "RUNWAY_DEPLOY_LIMIT")]
        deploy_limit: Option<bytesize::ByteSize>,
        /// Runs waiting to execute before triggers get 429.
        #[arg(long, env = "RUNWAY_MAX_QUEUED_RUNS")]
        max_queued_runs: Option<usize>,
    },
    /// Resume every run that has not ended (after a crash, or runs queued
    /// with --detach) and wait until none can make progress by itself.
    Resume {
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run and its children.
    Cancel {
        run_id: RunId,
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a run, then let the run go on until it ends or
    /// waits again.
    Signal {
        run_id: RunId,
        /// The signal's name, as the workflow waits for it.
        name: String,
        /// Signal data: JSON, or @FILE (default: null).
        #[arg(long)]
        data: Option<String>,
        /// Deduplication id: a second signal with the same id is dropped.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Deploy and run a component in one step.
    Exec {
        wasm: PathBuf,
        #[command(flatten)]
        manifest: ManifestArg,
        #[command(flatten)]
        run: RunArgs,
    },
    /// List runs, newest first.
    Runs {
        /// Only runs with this status.
        #[arg(long)]
        status: Option<RunStatus>,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show a run's event log.
    Events {
        run_id: RunId,
        /// Print the events as a JSON array (with --follow: one per line).
        #[arg(long)]
        json: bool,
        /// Keep printing events as they happen until the run ends (needs --server).
        #[arg(long)]
        follow: bool,
    },
    /// List deployed workflows (newest version of each).
    Workflows {
        #[arg(long)]
        json: bool,
    },
    /// List the configured models (--config's [models], or the server's):
    /// each alias and what it resolves to.
    Models {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ManifestArg {
    /// The manifest (default: runway.toml beside the .wasm).
    #[arg(long)]
    manifest: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Input JSON, or @FILE to read it from a file (default: {}).
    #[arg(long)]
    input: Option<String>,
    /// Print exactly one JSON object: {"run_id","status","output","error"}.
    #[arg(long)]
    json: bool,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("starting the runtime: {e}")),
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!(
        "{} {message}",
        "error:".if_supports_color(Stream::Stderr, |t| t.red())
    );
    ExitCode::from(2)
}

async fn open(cli: &Cli) -> anyhow::Result<Host> {
    let mut config = HostConfig::new(&cli.data_dir);
    if let Some(path) = &cli.config {
        config = config.apply_file(path)?;
    }
    Ok(Host::open(config).await?)
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Serve { .. } = &cli.command {
        return serve(&cli).await;
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
    if let Command::Events { follow: true, .. } = &cli.command {
        anyhow::bail!(
            "--follow tails a server's event stream: pass --server URL (or RUNWAY_SERVER)"
        );
    }
    let host = open(&cli).await?;
    let code = match &cli.command {
        Command::Deploy {
            wasm,
            manifest,
            json,
        } => {
            let d = deploy(&host, wasm, manifest.manifest.as_deref()).await?;
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
            let record = until_done_or_idle(&host, id).await?;
            print_run(&record, run.json)?
        }
        Command::Serve { .. } => unreachable!("handled above"),
        Command::Resume { json } => {
            let ids = host.store().active_runs()?;
            host.recover().await?;
            host.idle().await;
            let mut runs = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(r) = host.store().run(id)? {
                    runs.push(r);
                }
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
        Command::Cancel { run_id, json } => {
            let outcome = host.cancel(*run_id).await?;
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
            let receipt = host.signal(*run_id, name, payload, id.clone()).await?;
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
                print_run(&record, false)?;
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
            let record = until_done_or_idle(&host, id).await?;
            print_run(&record, run.json)?
        }
        Command::Runs {
            status,
            workflow,
            limit,
            json,
        } => {
            let runs = host.store().runs(*status, workflow.as_deref(), *limit)?;
            if *json {
                let list: Vec<_> = runs.iter().map(run_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_runs(&runs);
            }
            ExitCode::SUCCESS
        }
        Command::Events { run_id, json, .. } => {
            if host.store().run(*run_id)?.is_none() {
                return Err(HostError::RunNotFound(*run_id).into());
            }
            let events = host.store().events(*run_id, 0, usize::MAX)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                print_events(&events);
            }
            ExitCode::SUCCESS
        }
        Command::Models { json } => {
            print_models(&host.models(), *json)?;
            ExitCode::SUCCESS
        }
        Command::Workflows { json } => {
            let wfs = host.store().workflows()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&wfs)?);
            } else {
                print_workflows(&wfs);
            }
            ExitCode::SUCCESS
        }
    };
    host.flush().await?;
    Ok(code)
}

/// The commands against a server (`--server`).
async fn remote(cli: &Cli, server: &str) -> anyhow::Result<ExitCode> {
    let client = crate::client::Client::new(server, cli.token.clone())?;
    let poll = std::time::Duration::from_millis(100);
    Ok(match &cli.command {
        Command::Deploy {
            wasm,
            manifest,
            json,
        } => {
            let (bytes, toml) = read_deploy(wasm, manifest.manifest.as_deref())?;
            let slug = crate::Manifest::parse(&toml)?.slug;
            let d = client.deploy(&slug, bytes, toml).await?;
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
            if !record.status.is_terminal() && record.status != RunStatus::WaitingSignal {
                record = client.wait(record.id, poll).await?;
            }
            print_run(&record, run.json)?
        }
        Command::Runs {
            status,
            workflow,
            limit,
            json,
        } => {
            let runs = client.runs(*status, workflow.as_deref(), *limit).await?;
            if *json {
                let list: Vec<_> = runs.iter().map(run_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_runs(&runs);
            }
            ExitCode::SUCCESS
        }
        Command::Events {
            run_id,
            json,
            follow: true,
        } => {
            let mut header = !*json;
            client
                .follow(*run_id, 0, |e| {
                    if *json {
                        println!("{}", serde_json::to_string(e).unwrap_or_default());
                    } else {
                        if std::mem::take(&mut header) {
                            println!("SEQ  TIME                     KIND  DETAIL");
                        }
                        println!(
                            "{:<4} {}  {}  {}",
                            e.seq,
                            short_time(&e.at),
                            e.body.kind(),
                            event_detail(&e.body)
                        );
                    }
                })
                .await?;
            ExitCode::SUCCESS
        }
        Command::Events { run_id, json, .. } => {
            let events = client.events(*run_id).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                print_events(&events);
            }
            ExitCode::SUCCESS
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
        Command::Exec { .. } | Command::Resume { .. } | Command::Serve { .. } => {
            anyhow::bail!("this command runs on a data directory; drop --server (or RUNWAY_SERVER)")
        }
    })
}

/// A component and its manifest from disk.
fn read_deploy(wasm: &Path, manifest: Option<&Path>) -> anyhow::Result<(Vec<u8>, String)> {
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

async fn serve(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Command::Serve {
        listen,
        body_limit,
        deploy_limit,
        max_queued_runs,
    } = &cli.command
    else {
        anyhow::bail!("not the serve command");
    };
    let mut config = HostConfig::new(&cli.data_dir);
    if let Some(path) = &cli.config {
        config = config.apply_file(path)?;
    }
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
    if settings.tokens.is_empty() && !crate::api::is_loopback(&settings.listen) {
        anyhow::bail!(
            "refusing to listen on {} without API tokens: configure [[server.tokens]] (or RUNWAY_API_TOKENS), or listen on loopback",
            settings.listen
        );
    }
    if settings.tokens.is_empty() {
        tracing::warn!("no API tokens configured: every request is allowed (loopback only)");
    }
    let host = Host::open(config).await?;
    let resumed = host.recover().await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", settings.listen))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cron = tokio::spawn(crate::cron::run(host.clone(), stop_rx));
    eprintln!(
        "runway serving on http://{} (data {}, {resumed} runs resumed)",
        listener.local_addr()?,
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
    eprintln!("runway stopped");
    Ok(ExitCode::SUCCESS)
}

/// Waits until run `id` ends, or until nothing can progress without
/// outside input (then the run is shown as it stands, e.g. waiting for a
/// signal).
async fn until_done_or_idle(host: &Host, id: RunId) -> anyhow::Result<RunRecord> {
    tokio::select! {
        r = host.wait(id) => Ok(r?),
        () = host.idle() => Ok(host
            .store()
            .run(id)?
            .ok_or(HostError::RunNotFound(id))?),
    }
}

async fn deploy(
    host: &Host,
    wasm: &Path,
    manifest: Option<&Path>,
) -> anyhow::Result<crate::Deployment> {
    let (bytes, toml) = read_deploy(wasm, manifest)?;
    Ok(host.deploy(bytes, &toml).await?)
}

/// `--data` of a signal: JSON or @FILE; none is `null`.
fn read_signal_data(arg: Option<&str>) -> anyhow::Result<serde_json::Value> {
    match arg {
        Some(d) => read_input(Some(d)),
        None => Ok(serde_json::Value::Null),
    }
}

fn read_input(arg: Option<&str>) -> anyhow::Result<serde_json::Value> {
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

/// The `--json` shape of a finished run, fields in this order.
#[derive(serde::Serialize)]
struct RunJson<'a> {
    run_id: RunId,
    status: RunStatus,
    output: &'a Option<serde_json::Value>,
    error: Option<&'a crate::types::RunError>,
}

fn run_json(r: &RunRecord) -> RunJson<'_> {
    RunJson {
        run_id: r.id,
        status: r.status,
        output: &r.output,
        error: r.error.as_ref(),
    }
}

/// How long a run took, from its timestamps (sub-millisecond precision).
fn took(r: &RunRecord) -> String {
    match (r.started_at, r.finished_at) {
        (Some(a), Some(b)) => {
            let ms = (b - a).as_seconds_f64() * 1e3;
            if ms < 10.0 {
                format!("{ms:.2} ms")
            } else {
                format!("{ms:.0} ms")
            }
        }
        _ => format!("{} ms", r.usage.duration_ms),
    }
}

fn print_run(r: &RunRecord, as_json: bool) -> anyhow::Result<ExitCode> {
    if as_json {
        println!("{}", serde_json::to_string(&run_json(r))?);
    } else {
        match (&r.status, &r.output, &r.error) {
            (RunStatus::Completed, Some(out), _) => {
                println!("{}", serde_json::to_string_pretty(out)?);
                eprintln!(
                    "{} {} {} in {}",
                    r.id,
                    r.status.if_supports_color(Stream::Stderr, |t| t.green()),
                    r.workflow,
                    took(r)
                );
            }
            (_, _, Some(e)) => eprintln!(
                "{} {}: {}: {}",
                r.id,
                r.status.if_supports_color(Stream::Stderr, |t| t.red()),
                e.code,
                e.message
            ),
            (_, _, None) => match &r.wait {
                Some(crate::types::Wait::Signal { name, .. }) => eprintln!(
                    "{} {}: send it with `runway signal {} {name}`",
                    r.id, r.status, r.id
                ),
                _ => eprintln!("{} {}", r.id, r.status),
            },
        }
    }
    Ok(if r.status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints rows as aligned columns; the header is dimmed on a terminal.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let head = line(header.iter().map(|s| s.to_string()).collect());
    println!("{}", head.if_supports_color(Stream::Stdout, |t| t.bold()));
    for row in rows {
        println!("{}", line(row));
    }
}

fn short_time(t: &crate::types::Timestamp) -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    t.format(&f).unwrap_or_default()
}

fn print_runs(runs: &[RunRecord]) {
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                format!("{} v{}", r.workflow, r.version),
                r.status.to_string(),
                short_time(&r.created_at),
                took(r),
                r.error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.code, first_line(&e.message, 60)))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["RUN", "WORKFLOW", "STATUS", "CREATED", "DURATION", "ERROR"],
        rows,
    );
}

fn print_events(events: &[Event]) {
    let rows = events
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                short_time(&e.at),
                e.body.kind().to_string(),
                event_detail(&e.body),
            ]
        })
        .collect();
    table(&["SEQ", "TIME", "KIND", "DETAIL"], rows);
}

fn print_models(models: &[crate::models::Listing], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(models)?);
        return Ok(());
    }
    if models.is_empty() {
        println!("no models configured: add [models] to runway-host.toml (see the README)");
        return Ok(());
    }
    let rows = models
        .iter()
        .map(|m| {
            let r = &m.resolved;
            vec![
                m.name.clone(),
                r.reference.clone(),
                r.kind.as_str().to_owned(),
                r.base_url.clone(),
                format!(
                    "${} / ${}",
                    r.rates.input_per_million, r.rates.output_per_million
                ),
                r.context_window.map_or_else(String::new, |c| c.to_string()),
                m.key_secret.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "RESOLVES TO",
            "KIND",
            "BASE URL",
            "IN / OUT PER 1M",
            "CONTEXT",
            "KEY SECRET",
        ],
        rows,
    );
    Ok(())
}

fn print_workflows(wfs: &[WorkflowVersion]) {
    let rows = wfs
        .iter()
        .map(|w| {
            vec![
                w.slug.clone(),
                format!("v{}", w.version),
                w.digest[..12].to_string(),
                short_time(&w.deployed_at),
                first_line(w.description.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    table(
        &["SLUG", "VERSION", "DIGEST", "DEPLOYED", "DESCRIPTION"],
        rows,
    );
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Milliseconds since the Unix epoch as an RFC 3339 time.
fn format_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn event_detail(body: &EventBody) -> String {
    let s = match body {
        EventBody::Queued { workflow, version } => format!("{workflow} v{version}"),
        EventBody::Running | EventBody::Completed | EventBody::Cancelled => String::new(),
        EventBody::Log { level, message } => {
            format!(
                "[{}] {message}",
                serde_json::to_value(level)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("")
            )
        }
        EventBody::Custom { name, payload } => format!("{name} {payload}"),
        EventBody::ProgramOutput { stream, text } => format!(
            "{}: {text}",
            serde_json::to_value(stream)
                .unwrap_or_default()
                .as_str()
                .unwrap_or("")
        ),
        EventBody::SecretRead { name } => name.clone(),
        EventBody::ArtifactWritten {
            name,
            size,
            content_type,
            ..
        } => format!("{name} ({size} bytes, {content_type})"),
        EventBody::BudgetExceeded {
            budget,
            limit,
            used,
            unit,
        } => format!("{budget}: used {used} of {limit} {unit}"),
        EventBody::Failed { code, message } => format!("{code}: {message}"),
        EventBody::Sleeping { until_ms } => format!("until {}", format_ms(*until_ms)),
        EventBody::WaitingSignal { name, until_ms } => match until_ms {
            Some(u) => format!("{name} until {}", format_ms(*u)),
            None => name.clone(),
        },
        EventBody::WaitingChild { run } => run.to_string(),
        EventBody::SignalReceived { name, signal_seq } => format!("{name} (#{signal_seq})"),
        EventBody::ChildStarted { run, workflow } => format!("{run} ({workflow})"),
        EventBody::ModelCall {
            model,
            provider,
            provider_model,
            input_tokens,
            output_tokens,
            cost_usd,
            latency_ms,
            finish_reason,
            error,
            ..
        } => match error {
            Some(e) => format!(
                "{model} -> {provider}/{provider_model}: {}: {}",
                e.code, e.message
            ),
            None => format!(
                "{model} -> {provider}/{provider_model}: {input_tokens} in, {output_tokens} out, {cost_usd}, {latency_ms} ms, {}",
                finish_reason.as_deref().unwrap_or("")
            ),
        },
    };
    first_line(&s, 120)
}
