//! The `runway` command line. In embedded mode the CLI process is the host,
//! on the data directory.
//!
//! Exit codes: 0 when the command (and the run) succeeded, 1 when a run did
//! not complete (it failed, was cancelled, or waits for a signal), 2 when
//! the command itself failed.

pub mod author;
pub mod client;
mod dev;
mod local;
mod mcp;
mod print;
mod remote;
mod serve;

use local::*;
use print::*;
use remote::*;
use serve::*;

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
    /// Keep the tables in this PostgreSQL database
    /// (postgres://USER@HOST:PORT/DB) instead of runway.redb in the data
    /// directory (which still holds the compile cache and secrets.toml).
    #[arg(long, env = "RUNWAY_STORE", global = true, hide_env_values = true)]
    store: Option<String>,
    /// Talk to a `runway serve` at this URL instead of opening the data
    /// directory (deploy, run, runs, show, events, artifacts, cancel,
    /// signal, approvals, approve, audit, workflows).
    #[arg(long, env = "RUNWAY_SERVER", global = true)]
    server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, env = "RUNWAY_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// How `runs` and `events` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// `--output`, or `--json`, or text.
    fn of(json: bool, output: Option<Format>) -> Format {
        match (output, json) {
            (Some(f), _) => f,
            (None, true) => Format::Json,
            (None, false) => Format::Text,
        }
    }

    /// Prints `items` as JSON or JSON lines, or calls `text`.
    fn print<T: serde::Serialize>(self, items: &[T], text: impl FnOnce()) -> anyhow::Result<()> {
        match self {
            Format::Text => text(),
            Format::Json => println!("{}", serde_json::to_string_pretty(items)?),
            Format::Jsonl => {
                for item in items {
                    println!("{}", serde_json::to_string(item)?);
                }
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Write a new workflow crate NAME (in ./NAME, or --dir) that builds
    /// and deploys as it is.
    New {
        name: String,
        #[arg(long, value_enum, default_value_t = author::Template::Hello)]
        template: author::Template,
        /// Where to write it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the workflow crate at PATH (default: .) for wasm32-wasip2 and
    /// leave dist/SLUG.wasm beside a copy of its runway.toml.
    Build {
        path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run the tests of the workflow crate at PATH (default: .): `cargo
    /// test` for wasm32-wasip2, with each scenario a test scripts
    /// (`runway_sdk::testing`) run on this host's engine. Arguments after
    /// `--` go to `cargo test`.
    Test {
        path: Option<PathBuf>,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// What `cargo test` runs a workflow crate's test binaries with (the
    /// crate's .cargo/config.toml names it): each test in an instance of
    /// its own, on the real engine.
    #[command(hide = true)]
    TestRunner {
        wasm: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Serve on loopback, build and deploy the workflow crate at PATH
    /// (default: .), then rebuild and redeploy on every change to its
    /// sources; runs already started keep their version.
    Dev {
        path: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8686")]
        listen: std::net::SocketAddr,
    },
    /// Print a shell completion script: `runway completions bash >
    /// /etc/bash_completion.d/runway` (zsh: into a directory on $fpath as
    /// `_runway`; fish: `~/.config/fish/completions/runway.fish`).
    Completions { shell: clap_complete::Shell },
    /// Deploy a component as the next version of its manifest's slug.
    Deploy {
        /// The workflow component (.wasm).
        wasm: PathBuf,
        #[command(flatten)]
        manifest: ManifestArg,
        /// Deploy only if the runs not ended and the 100 most recent
        /// completed ones replay the same on it (see `runway verify`).
        #[arg(long)]
        verify: bool,
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
    /// Exit 0 if the server (--server) can take work (its /readyz), else
    /// say why and exit 1: a container's health check.
    Ready,
    /// Resume every run that has not ended (after a crash, or runs queued
    /// with --detach) and wait until none can make progress by itself.
    Resume {
        #[arg(long)]
        json: bool,
    },
    /// Start a new run of a run's workflow with its stored input (or
    /// --input), on its version (or the newest, --latest), linked to it.
    Rerun {
        run_id: RunId,
        /// Input instead of the stored one: JSON, or @FILE.
        #[arg(long)]
        input: Option<String>,
        /// On the workflow's newest version.
        #[arg(long)]
        latest: bool,
        /// Print the new run's id and return without waiting.
        #[arg(long)]
        detach: bool,
        #[arg(long)]
        json: bool,
    },
    /// Fork a run: a new run that replays it up to event SEQ (the calls
    /// before it are not made again) and goes on live from there.
    Reset {
        run_id: RunId,
        /// The event to fork after (its seq, as `runway events` shows it).
        #[arg(long, value_name = "SEQ")]
        to: u64,
        /// Print the new run's id and return without waiting.
        #[arg(long)]
        detach: bool,
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
        /// Print the runs as a JSON array (the same as --output json).
        #[arg(long, conflicts_with = "output")]
        json: bool,
        /// text, json (an array) or jsonl (one object per line).
        #[arg(long, value_enum)]
        output: Option<Format>,
    },
    /// Show a run: status, times, input and output (or error), what it
    /// waits for, usage, parent and children, artifacts. Exit 1 unless it
    /// completed.
    Show {
        run_id: RunId,
        /// Print one JSON object: the run as the API shows it, with
        /// `artifacts` and `children_detail` (id, workflow, status).
        #[arg(long)]
        json: bool,
    },
    /// List a run's artifacts, or write artifact NAME's body to -o FILE
    /// (default: stdout, as raw bytes).
    Artifacts {
        run_id: RunId,
        /// The artifact to download.
        name: Option<String>,
        /// Where to write NAME's body; `-` is stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE", requires = "name")]
        output: Option<PathBuf>,
        /// List the artifacts as a JSON array; with NAME and -o FILE, print
        /// what was written as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show a run's event log.
    Events {
        run_id: RunId,
        /// Print the events as a JSON array (with --follow: one per line).
        #[arg(long, conflicts_with = "output")]
        json: bool,
        /// text, json (an array) or jsonl (one event per line; with
        /// --follow, json is jsonl too).
        #[arg(long, value_enum)]
        output: Option<Format>,
        /// Keep printing events as they happen until the run ends (needs --server).
        #[arg(long)]
        follow: bool,
    },
    /// List the approvals runs asked people, newest run first: what they
    /// ask, of which kind, and who decided them.
    Approvals {
        /// Only approvals in this state.
        #[arg(long, value_enum)]
        status: Option<ApprovalState>,
        /// Only approvals of this workflow's runs.
        #[arg(long)]
        workflow: Option<String>,
        /// Only this run's approvals.
        #[arg(long = "run", value_name = "RUN_ID")]
        run_id: Option<RunId>,
        /// Only those the token may decide (with --server; on a data
        /// directory every approval is yours to decide).
        #[arg(long)]
        mine: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the approvals as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Decide approval NAME of a run: --approve or --deny a gate, choose
    /// one --option of a decision, or give --options A,B for a selection
    /// (the chosen ones) or a ranking (all, best first). On a data
    /// directory, then let the run go on until it ends or waits again.
    Approve {
        run_id: RunId,
        /// The approval's name, as the workflow asks it.
        name: String,
        #[command(flatten)]
        choice: ChoiceArgs,
        /// Why, for the record.
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show the server's audit trail, newest first: every state-changing
    /// request and every refused one (admin; needs --server).
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only entries before this sequence number (the next page).
        #[arg(long, value_name = "SEQ")]
        before: Option<u64>,
        /// Print the entries as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// List deployed workflows (newest version of each).
    Workflows {
        #[arg(long)]
        json: bool,
    },
    /// Show a workflow's cron triggers (schedule, next and last fire, the
    /// last run); --pause, --resume or --fire one (by its index) first.
    Cron {
        slug: String,
        #[arg(long, value_name = "INDEX", conflicts_with_all = ["resume", "fire"])]
        pause: Option<usize>,
        #[arg(long, value_name = "INDEX", conflicts_with = "fire")]
        resume: Option<usize>,
        /// Start a run now with the trigger's input (paused or not).
        #[arg(long, value_name = "INDEX")]
        fire: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Replay recorded runs of SLUG against a new component, without any
    /// effect: every run that has not ended and up to --runs recent
    /// completed ones. Names the first call the new code makes differently.
    /// Exit 1 if any run diverges or fails.
    Verify {
        slug: String,
        wasm: PathBuf,
        /// Recent completed runs to replay (besides every run not ended).
        #[arg(long, default_value_t = 100)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Delete an ended run with its children: events, journal, signals,
    /// idempotency keys and artifacts (admin).
    Delete {
        run_id: RunId,
        #[arg(long)]
        json: bool,
    },
    /// Delete ended runs (each with its children) that ended longer ago
    /// than --older-than, and/or all but the newest --keep-per-workflow.
    Purge {
        /// e.g. 30d, 12h, 90m.
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        #[arg(long, value_name = "N")]
        keep_per_workflow: Option<usize>,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the store and its artifacts to PATH (a
    /// new directory), also while a server runs (with --server). PATH is a
    /// data directory: restore by serving it (`runway serve --data-dir
    /// PATH`). secrets.toml is not copied.
    Backup {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check the store file page by page (a copy of it: the file is not
    /// touched); with --repair, copy it aside and repair it in place. The
    /// data directory must not be in use.
    Doctor {
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
    },
    /// Create or check the tables of the PostgreSQL store (--store); with
    /// --from-redb DIR, copy that data directory's store (runs, workflows,
    /// artifacts) into the database, which must be empty.
    Migrate {
        #[arg(long)]
        from_redb: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// MCP servers of the host's config: list them with their tools and
    /// grants, sign in to one with OAuth, forget a grant.
    Mcp {
        #[command(subcommand)]
        action: McpAction,
    },
    /// List the configured models (--config's [models], or the server's):
    /// each alias and what it resolves to.
    Models {
        #[arg(long)]
        json: bool,
    },
}

/// What `runway mcp` does.
#[derive(Subcommand)]
pub enum McpAction {
    /// The configured servers: how each is reached, its grant, the tools
    /// it lists.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Authorizes the host with server NAME (OAuth 2.1, authorization code
    /// with PKCE): prints the URL to open, takes the code on a loopback
    /// redirect, stores the grant in the data directory.
    Login {
        name: String,
        /// Seconds to wait for the redirect.
        #[arg(long, default_value_t = 300)]
        wait: u64,
    },
    /// Forgets server NAME's grant.
    Logout { name: String },
}

#[derive(Args)]
struct ManifestArg {
    /// The manifest (default: runway.toml beside the .wasm).
    #[arg(long)]
    manifest: Option<PathBuf>,
}

/// The states `runway approvals --status` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ApprovalState {
    Pending,
    Decided,
    /// Decided by its timeout's default.
    #[value(name = "timed_out", alias = "timed-out")]
    TimedOut,
}

impl ApprovalState {
    /// As the store and the API name it.
    fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Decided => "decided",
            ApprovalState::TimedOut => "timed_out",
        }
    }
}

/// `runway approve`'s answer: exactly one of the flags.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct ChoiceArgs {
    /// Approve a gate.
    #[arg(long)]
    approve: bool,
    /// Deny a gate.
    #[arg(long)]
    deny: bool,
    /// A decision's option.
    #[arg(long, value_name = "OPTION")]
    option: Option<String>,
    /// A selection's options, or a ranking (all, best first).
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    options: Option<Vec<String>>,
}

impl ChoiceArgs {
    fn choice(&self) -> crate::types::Choice {
        crate::types::Choice {
            approved: match (self.approve, self.deny) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            option: self.option.clone(),
            options: self.options.clone(),
        }
    }
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

/// The request `runway purge`'s flags ask for, locally or of a server.
fn purge_request(
    older_than: &Option<String>,
    keep_per_workflow: Option<usize>,
    workflow: &Option<String>,
    dry_run: bool,
) -> crate::host::PurgeRequest {
    crate::host::PurgeRequest {
        older_than: older_than.clone(),
        keep_per_workflow,
        workflow: workflow.clone(),
        dry_run,
    }
}

/// Where `runway artifacts RUN NAME` writes the body: the file `-o`
/// names, or stdout (`None`, also for `-o -`).
fn artifact_target(output: Option<&Path>, json: bool) -> anyhow::Result<Option<&Path>> {
    let to = output.filter(|p| *p != Path::new("-"));
    if to.is_none() && json {
        anyhow::bail!("--json with an artifact's NAME needs -o FILE: the body goes to stdout");
    }
    Ok(to)
}

/// Opens `path` for an artifact's body (created or truncated).
fn create_output(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve = matches!(cli.command, Command::Serve { .. });
    let otlp = if serve { otlp_endpoint(&cli) } else { None };
    // Flush the log and the traces as the process ends.
    let (_log, _traces) = match init_logging(serve, otlp.as_deref()) {
        Ok(guards) => guards,
        Err(e) => return fail(&e),
    };
    // A panic the host survives (a read of a damaged store, a handler's
    // bug) is one error line in the log, not a multi-line report.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(ToString::to_string);
        let message = crate::store::panic_message(info.payload());
        tracing::error!(location, message, "panic");
    }));
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

/// Logs to stderr, filtered by `RUNWAY_LOG` (default: `info` for the
/// server, `warn` for other commands), as text or, with
/// `RUNWAY_LOG_FORMAT=json`, one JSON object per line; colours only when
/// stderr is a terminal and `NO_COLOR` is not set. Lines are written by a
/// thread of their own, so a request never waits on stderr; none is
/// dropped (a full buffer makes the logger wait instead).
///
/// With `otlp` (the server's `[telemetry] otlp_endpoint`), spans are also
/// exported as traces (see `telemetry`); the second guard flushes them.
fn init_logging(
    serve: bool,
    otlp: Option<&str>,
) -> Result<
    (
        tracing_appender::non_blocking::WorkerGuard,
        Option<crate::telemetry::Telemetry>,
    ),
    String,
> {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("runway-log")
        .finish(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNWAY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if serve { "info" } else { "warn" })
    });
    let json = std::env::var("RUNWAY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let log = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(writer)
            .boxed()
    } else {
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(writer)
            .boxed()
    };
    let (traces, telemetry) = match otlp {
        Some(endpoint) => {
            let (layer, t) = crate::telemetry::layer(endpoint)?;
            (Some(layer), Some(t))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(traces)
        .init();
    Ok((guard, telemetry))
}

/// Where the server sends traces: `[telemetry] otlp_endpoint` in
/// `--config`, else `OTEL_EXPORTER_OTLP_ENDPOINT`. A config file that does
/// not parse is reported by `serve` itself.
fn otlp_endpoint(cli: &Cli) -> Option<String> {
    cli.config
        .as_ref()
        .and_then(|path| HostConfig::new(&cli.data_dir).apply_file(path).ok())
        .and_then(|c| c.otlp_endpoint)
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty())
}

fn fail(message: &str) -> ExitCode {
    eprintln!(
        "{} {message}",
        "error:".if_supports_color(Stream::Stderr, |t| t.red())
    );
    ExitCode::from(2)
}

async fn open(cli: &Cli) -> anyhow::Result<Host> {
    Ok(Host::open(host_config(cli)?).await?)
}

/// The host configuration: defaults, `--config`, then `--store`.
fn host_config(cli: &Cli) -> anyhow::Result<HostConfig> {
    let mut config = HostConfig::new(&cli.data_dir);
    if let Some(path) = &cli.config {
        config = config.apply_file(path)?;
    }
    if let Some(url) = &cli.store {
        if !crate::store::is_postgres_url(url) {
            anyhow::bail!("--store: expected postgres://USER@HOST:PORT/DATABASE");
        }
        config.store_url = Some(url.clone());
    }
    Ok(config)
}
