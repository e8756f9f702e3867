//! How the CLI shows runs, events, workflows and models: tables for people, JSON for scripts.

use super::*;
use crate::types::ArtifactMeta;

/// The `--json` shape of a finished run, fields in this order.
#[derive(serde::Serialize)]
pub(super) struct RunJson<'a> {
    run_id: RunId,
    status: RunStatus,
    output: &'a Option<serde_json::Value>,
    error: Option<&'a crate::types::RunError>,
}

/// A run's whole record, as the API shows it (without its random seed),
/// with its id also as `run_id`, the name `run --json` gives it.
pub(super) fn record_json(r: &RunRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("seed");
        o.insert("run_id".into(), serde_json::json!(r.id));
    }
    v
}

pub(super) fn run_json(r: &RunRecord) -> RunJson<'_> {
    RunJson {
        run_id: r.id,
        status: r.status,
        output: &r.output,
        error: r.error.as_ref(),
    }
}

/// How long a run took, from its timestamps (sub-millisecond precision).
pub(super) fn took(r: &RunRecord) -> String {
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

/// Prints a run; `server` is the `--server` the run lives on, so a hint
/// pasted elsewhere reaches the same run.
pub(super) fn print_run(
    r: &RunRecord,
    as_json: bool,
    server: Option<&str>,
) -> anyhow::Result<ExitCode> {
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
                    "{} {}: send it with `runway {}signal {} {name}`",
                    r.id,
                    r.status,
                    server.map_or_else(String::new, |s| format!("--server {s} ")),
                    r.id
                ),
                Some(crate::types::Wait::Approval { name, .. }) => eprintln!(
                    "{} {}: decide it with `runway {}approve {} {name} …`",
                    r.id,
                    r.status,
                    server.map_or_else(String::new, |s| format!("--server {s} ")),
                    r.id
                ),
                _ => eprintln!("{} {}", r.id, r.status),
            },
        }
    }
    Ok(exit_for(r.status))
}

/// 0 for a completed run, 1 for one that failed, was cancelled or has not
/// ended.
fn exit_for(status: RunStatus) -> ExitCode {
    if status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints rows as aligned columns; the header is bold on a terminal.
pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) {
    table_indented("", header, rows);
}

/// [`table`], each line after `indent` (a table inside a section).
fn table_indented(indent: &str, header: &[&str], rows: Vec<Vec<String>>) {
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
    println!(
        "{indent}{}",
        head.if_supports_color(Stream::Stdout, |t| t.bold())
    );
    for row in rows {
        println!("{indent}{}", line(row));
    }
}

pub(super) fn short_time(t: &crate::types::Timestamp) -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    t.format(&f).unwrap_or_default()
}

/// A child run as `show` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub(super) struct ChildSummary {
    pub id: RunId,
    pub workflow: String,
    pub status: RunStatus,
}

impl ChildSummary {
    /// The summary of child run `r`.
    pub fn of(r: &RunRecord) -> ChildSummary {
        ChildSummary {
            id: r.id,
            workflow: r.workflow.clone(),
            status: r.status,
        }
    }
}

/// Everything `runway show` prints about a run, read locally or from a
/// server.
pub(super) struct Shown {
    /// The run as `GET /v1/runs/{id}` shows it: no seed, its children's
    /// ids in `children`.
    pub view: serde_json::Value,
    pub record: RunRecord,
    pub children: Vec<ChildSummary>,
    pub artifacts: Vec<ArtifactMeta>,
}

/// A run as the API shows it (`RunView`): the record without its seed,
/// with its children's ids. Locally built, so both modes print the same.
pub(super) fn run_view(r: &RunRecord, children: &[RunId]) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("seed");
        o.insert("children".into(), serde_json::json!(children));
    }
    v
}

/// Prints `runway show`: one JSON object, or the headline and sections for
/// people. `server` is the `--server` the run lives on, for the signal
/// hint. Exit 0 only for a completed run, as `run` does.
pub(super) fn print_show(
    s: &Shown,
    as_json: bool,
    server: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if as_json {
        let mut v = s.view.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("artifacts".into(), serde_json::to_value(&s.artifacts)?);
            o.insert("children_detail".into(), serde_json::to_value(&s.children)?);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_show_text(s, server)?;
    }
    Ok(exit_for(s.record.status))
}

/// Width of `show`'s labels (the longest is `waits for`).
const LABEL: usize = 9;

/// One `label  value` line of `show`; the label is bold on a terminal.
fn field(label: &str, value: impl std::fmt::Display) {
    let label = format!("{label:<LABEL$}");
    println!(
        "{}  {value}",
        label.if_supports_color(Stream::Stdout, |t| t.bold())
    );
}

/// A line continuing the field above it.
fn more(value: impl std::fmt::Display) {
    println!("{:LABEL$}  {value}", "");
}

/// A section's heading, after a blank line.
fn heading(title: &str) {
    println!();
    println!("{}", title.if_supports_color(Stream::Stdout, |t| t.bold()));
}

/// Each line of `text`, indented under its heading.
fn indented(text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            println!();
        } else {
            println!("  {line}");
        }
    }
}

/// Milliseconds since the Unix epoch in `short_time`'s form.
fn short_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_or_else(|_| format_ms(ms), |t| short_time(&t))
}

/// A run's model usage: calls, tokens and cost.
fn model_line(m: &crate::types::ModelUsage) -> String {
    format!(
        "{} calls, {} tokens ({} in, {} out, {} cached), {}",
        m.calls,
        m.tokens(),
        m.input_tokens,
        m.output_tokens,
        m.cached_tokens,
        m.cost_usd
    )
}

fn print_show_text(s: &Shown, server: Option<&str>) -> anyhow::Result<()> {
    let r = &s.record;
    let dash = || "-".to_owned();
    field("run", r.id);
    field("workflow", format!("{} v{}", r.workflow, r.version));
    let status = r.status.to_string();
    let status = match r.status {
        RunStatus::Completed => status
            .if_supports_color(Stream::Stdout, |t| t.green())
            .to_string(),
        RunStatus::Failed | RunStatus::Cancelled => status
            .if_supports_color(Stream::Stdout, |t| t.red())
            .to_string(),
        _ => status,
    };
    field("status", status);
    if let Some(t) = &r.trigger {
        let of = match (t.rerun_of, t.reset_to) {
            (Some(o), Some(at)) => format!(" of {o} after event {at}"),
            (Some(o), None) => format!(" of {o}"),
            _ => String::new(),
        };
        field("trigger", format!("{}{of} ({})", t.kind, t.by));
    }
    if r.attempt > 1 {
        field("attempt", r.attempt.to_string());
    }
    if let Some(by) = &r.cancel_requested_by {
        field("cancel", format!("requested by {by}"));
    }
    field("created", short_time(&r.created_at));
    field(
        "started",
        r.started_at.as_ref().map_or_else(dash, short_time),
    );
    field(
        "finished",
        r.finished_at.as_ref().map_or_else(dash, short_time),
    );
    field(
        "duration",
        if r.finished_at.is_some() {
            took(r)
        } else {
            dash()
        },
    );
    if let Some(parent) = r.parent {
        field("parent", parent);
    }
    match &r.wait {
        Some(crate::types::Wait::Timer { until_ms }) => {
            field("waits for", format!("timer until {}", short_ms(*until_ms)));
        }
        Some(crate::types::Wait::Signal { name, until_ms }) => {
            let until = until_ms.map_or_else(String::new, |u| format!(" (until {})", short_ms(u)));
            field("waits for", format!("signal {name:?}{until}"));
            more(format!(
                "send it with `runway {}signal {} {name}`",
                server.map_or_else(String::new, |s| format!("--server {s} ")),
                r.id
            ));
        }
        Some(crate::types::Wait::Child { run }) => field("waits for", format!("child run {run}")),
        Some(crate::types::Wait::Approval { name, until_ms }) => {
            let until = until_ms.map_or_else(String::new, |u| format!(" (until {})", short_ms(u)));
            field("waits for", format!("approval {name:?}{until}"));
            more(format!(
                "decide it with `runway {}approve {} {name} …`",
                server.map_or_else(String::new, |s| format!("--server {s} ")),
                r.id
            ));
        }
        None => {}
    }
    let u = &r.usage;
    field(
        "usage",
        format!(
            "fuel {}, {} ms in the sandbox, peak memory {}",
            u.fuel,
            u.duration_ms,
            bytesize::ByteSize(u.peak_memory_bytes)
        ),
    );
    if u.model.calls == 0 && u.model_tree.calls == 0 {
        field("models", "none");
    } else {
        field("models", format!("own {}", model_line(&u.model)));
        more(format!("tree {}", model_line(&u.model_tree)));
    }

    heading("input");
    indented(&serde_json::to_string_pretty(&r.input)?);
    if let Some(out) = &r.output {
        heading("output");
        indented(&serde_json::to_string_pretty(out)?);
    }
    if let Some(e) = &r.error {
        // The message may be a trap with its backtrace: all of it.
        heading(&format!("error {}", e.code));
        indented(&e.message);
    }
    if !s.children.is_empty() {
        heading(&format!("children ({})", s.children.len()));
        let rows = s
            .children
            .iter()
            .map(|c| vec![c.id.to_string(), c.workflow.clone(), c.status.to_string()])
            .collect();
        table_indented("  ", &["RUN", "WORKFLOW", "STATUS"], rows);
    }
    heading(&format!("artifacts ({})", s.artifacts.len()));
    if s.artifacts.is_empty() {
        indented("none");
    } else {
        let rows = s
            .artifacts
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    a.content_type.clone(),
                    bytesize::ByteSize(a.size).to_string(),
                ]
            })
            .collect();
        table_indented("  ", &["NAME", "CONTENT TYPE", "SIZE"], rows);
    }
    Ok(())
}

/// Prints a run's artifacts: a JSON array (as the API lists them) or a
/// table.
pub(super) fn print_artifacts(artifacts: &[ArtifactMeta], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(artifacts)?);
        return Ok(());
    }
    if artifacts.is_empty() {
        eprintln!("no artifacts");
        return Ok(());
    }
    let rows = artifacts
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.content_type.clone(),
                bytesize::ByteSize(a.size).to_string(),
                a.digest.get(..12).unwrap_or(&a.digest).to_owned(),
                short_time(&a.created_at),
            ]
        })
        .collect();
    table(&["NAME", "CONTENT TYPE", "SIZE", "DIGEST", "CREATED"], rows);
    Ok(())
}

/// Reports a downloaded artifact: on stderr for people (stdout may hold
/// the body), or one JSON object on stdout.
pub(super) fn print_downloaded(
    meta: &ArtifactMeta,
    to: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let Some(path) = to else {
        return Ok(());
    };
    if json {
        let mut v = serde_json::to_value(meta)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("path".into(), path.display().to_string().into());
        }
        println!("{v}");
    } else {
        eprintln!(
            "wrote {} ({}, {}) to {}",
            meta.name,
            bytesize::ByteSize(meta.size),
            meta.content_type,
            path.display()
        );
    }
    Ok(())
}

/// An approval's kind as the API names it.
fn approval_kind(k: crate::types::ApprovalKind) -> &'static str {
    use crate::types::ApprovalKind as K;
    match k {
        K::Gate => "gate",
        K::Decision => "decision",
        K::Select => "select",
        K::Rank => "rank",
    }
}

/// Prints approvals: a JSON array (as the API lists them) or a table.
pub(super) fn print_approvals(
    approvals: &[crate::types::Approval],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(approvals)?);
        return Ok(());
    }
    if approvals.is_empty() {
        eprintln!("no approvals");
        return Ok(());
    }
    let rows = approvals
        .iter()
        .map(|a| {
            let by = match &a.decision {
                Some(d) if d.timed_out => "(timeout)".to_owned(),
                Some(d) => d.by.clone().unwrap_or_default(),
                None => String::new(),
            };
            vec![
                a.run_id.to_string(),
                a.workflow.clone(),
                a.name.clone(),
                approval_kind(a.spec.kind).to_owned(),
                a.status.clone(),
                short_time(&a.requested_at),
                first_line(&a.spec.prompt, 60),
                by,
            ]
        })
        .collect();
    table(
        &[
            "RUN", "WORKFLOW", "NAME", "KIND", "STATUS", "ASKED", "PROMPT", "BY",
        ],
        rows,
    );
    Ok(())
}

/// What a decision chose, in words: `approved`, `denied`, the option, or
/// the options in order.
pub(super) fn choice_text(c: &crate::types::Choice) -> String {
    match c {
        crate::types::Choice {
            approved: Some(true),
            ..
        } => "approved".to_owned(),
        crate::types::Choice {
            approved: Some(false),
            ..
        } => "denied".to_owned(),
        crate::types::Choice {
            option: Some(o), ..
        } => o.clone(),
        crate::types::Choice {
            options: Some(o), ..
        } => o.join(", "),
        _ => "nothing".to_owned(),
    }
}

/// Reports a decision of approval `name` of `run`: one JSON object
/// (the decision, `duplicate`, `run_id`, `name`, and `status`: the run's,
/// when known) or a line on stderr.
pub(super) fn print_decided(
    run: RunId,
    name: &str,
    decided: &super::client::Decided,
    status: Option<RunStatus>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(decided)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("run_id".into(), serde_json::json!(run));
            o.insert("name".into(), serde_json::json!(name));
            if let Some(s) = status {
                o.insert("status".into(), serde_json::json!(s));
            }
        }
        println!("{v}");
        return Ok(());
    }
    let d = &decided.decision;
    let by = d.by.as_deref().unwrap_or("the timeout");
    let comment = d.comment.as_deref().map_or_else(String::new, |c| {
        format!(", comment {:?}", first_line(c, 60))
    });
    let what = choice_text(&d.choice);
    if decided.duplicate {
        eprintln!(
            "{name} of {run} was already decided that way: {what} (by {by}{comment}); nothing changed"
        );
    } else {
        eprintln!("decided {name} of {run}: {what} (by {by}{comment})");
    }
    Ok(())
}

/// Prints the audit trail: a JSON array or a table; `next` is the `--before`
/// of the next page, if there is one.
pub(super) fn print_audit(
    entries: &[crate::types::AuditEntry],
    next: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("no audit entries");
        return Ok(());
    }
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                short_time(&e.at),
                e.principal.clone().unwrap_or_else(|| "-".to_owned()),
                e.method.clone(),
                e.path.clone(),
                e.status.to_string(),
                e.outcome.clone(),
            ]
        })
        .collect();
    table(
        &[
            "SEQ",
            "TIME",
            "PRINCIPAL",
            "METHOD",
            "PATH",
            "STATUS",
            "OUTCOME",
        ],
        rows,
    );
    if let Some(seq) = next {
        eprintln!("older entries: `runway audit --before {seq}`");
    }
    Ok(())
}

pub(super) fn print_runs(runs: &[RunRecord]) {
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

/// One line of `events --follow`: fixed widths (rows come one at a time,
/// so the columns cannot be measured first), wide enough for every kind.
pub(super) fn follow_line(seq: &str, time: &str, kind: &str, detail: &str) -> String {
    format!("{seq:<6} {time:<23}  {kind:<17} {detail}")
        .trim_end()
        .to_owned()
}

pub(super) fn print_events(events: &[Event]) {
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

pub(super) fn print_models(models: &[crate::models::Listing], json: bool) -> anyhow::Result<()> {
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

pub(super) fn print_verdicts(verdicts: &[crate::host::Verdict], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(verdicts)?);
        return Ok(());
    }
    if verdicts.is_empty() {
        eprintln!("no recorded runs to replay");
        return Ok(());
    }
    let rows = verdicts
        .iter()
        .map(|v| {
            let detail = match (&v.divergence, &v.error) {
                (Some(d), _) => format!("call #{}: recorded {}, new {}", d.seq, d.recorded, d.new),
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            };
            vec![
                v.run_id.to_string(),
                v.status.to_string(),
                v.calls.to_string(),
                format!("{:?}", v.outcome).to_lowercase(),
                first_line(&detail, 100),
            ]
        })
        .collect();
    table(
        &["RUN", "STATUS", "CALLS", "OUTCOME", "FIRST DIFFERENCE"],
        rows,
    );
    let same = verdicts
        .iter()
        .filter(|v| v.outcome == crate::host::Outcome::Same)
        .count();
    eprintln!("{same} of {} runs make the same calls", verdicts.len());
    Ok(())
}

pub(super) fn print_cron(
    triggers: &[crate::triggers::cron::CronView],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(triggers)?);
        return Ok(());
    }
    if triggers.is_empty() {
        eprintln!("no cron triggers");
        return Ok(());
    }
    let rows = triggers
        .iter()
        .map(|t| {
            vec![
                t.index.to_string(),
                t.schedule.clone(),
                if t.paused { "paused" } else { "running" }.to_owned(),
                t.next_fire.clone().unwrap_or_default(),
                t.last_fire.clone().unwrap_or_default(),
                match (&t.last_run, &t.last_run_status) {
                    (Some(r), Some(s)) => format!("{r} {s}"),
                    (Some(r), None) => r.to_string(),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    table(
        &["#", "SCHEDULE", "STATE", "NEXT", "LAST", "LAST RUN"],
        rows,
    );
    Ok(())
}

pub(super) fn print_workflows(wfs: &[WorkflowVersion]) {
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

pub(super) fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Milliseconds since the Unix epoch as an RFC 3339 time.
pub(super) fn format_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

pub(super) fn event_detail(body: &EventBody) -> String {
    let s = match body {
        EventBody::Queued { workflow, version } => format!("{workflow} v{version}"),
        EventBody::Running | EventBody::Completed => String::new(),
        EventBody::Cancelled { by } => by.as_ref().map_or(String::new(), |b| format!("by {b}")),
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
        EventBody::ApprovalRequested {
            name,
            approval,
            prompt,
        } => format!("{name} ({approval:?}): {prompt}"),
        EventBody::WaitingApproval { name, .. } => name.clone(),
        EventBody::ApprovalDecided { name, decision } => {
            let what = serde_json::to_string(&decision.choice).unwrap_or_default();
            match &decision.by {
                Some(by) => format!("{name} {what} by {by}"),
                None => format!("{name} {what} (timed out)"),
            }
        }
        EventBody::SignalReceived {
            name,
            signal_seq,
            by,
        } => match by {
            Some(b) => format!("{name} (#{signal_seq}) from {b}"),
            None => format!("{name} (#{signal_seq})"),
        },
        EventBody::Retrying {
            attempt,
            code,
            message,
            at_ms,
            kept,
        } => format!(
            "attempt {attempt} at {} after {code}: {message} (replays {kept} calls)",
            format_ms(*at_ms)
        ),
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
            tool_calls,
            ..
        } => match error {
            Some(e) => format!(
                "{model} -> {provider}/{provider_model}: {}: {}",
                e.code, e.message
            ),
            None => format!(
                "{model} -> {provider}/{provider_model}: {input_tokens} in, {output_tokens} out, {cost_usd}, {latency_ms} ms, {}{}",
                finish_reason.as_deref().unwrap_or(""),
                if tool_calls.is_empty() {
                    String::new()
                } else {
                    format!(" -> {}", tool_calls.join(", "))
                }
            ),
        },
        EventBody::ToolCall {
            server,
            tool,
            duration_ms,
            outcome,
            error,
            ..
        } => match error {
            Some(e) => format!(
                "{server}/{tool}: {}: {} ({duration_ms} ms)",
                e.code, e.message
            ),
            None => format!("{server}/{tool}: {outcome} ({duration_ms} ms)"),
        },
        EventBody::HttpCall {
            method,
            url,
            status,
            bytes_received,
            duration_ms,
            error,
            ..
        } => match (status, error) {
            (_, Some(e)) => format!("{method} {url}: {}: {}", e.code, e.message),
            (Some(s), None) => {
                format!("{method} {url}: {s}, {bytes_received} bytes, {duration_ms} ms")
            }
            (None, None) => format!("{method} {url}"),
        },
    };
    first_line(&s, 120)
}

pub(super) fn print_deleted(run: RunId, runs: u64, json: bool) {
    if json {
        println!("{}", serde_json::json!({ "run_id": run, "runs": runs }));
    } else {
        let children = runs.saturating_sub(1);
        println!("deleted {run} (and {children} child runs)");
    }
}

pub(super) fn print_purge(r: &crate::host::PurgeReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else if r.dry_run {
        println!("would delete {} runs (each with its children)", r.runs);
    } else {
        println!(
            "deleted {} runs ({} with their children), reclaimed {} artifact blobs",
            r.runs, r.runs_with_children, r.blobs
        );
    }
    Ok(())
}

pub(super) fn print_backup(
    path: &std::path::Path,
    r: &crate::host::BackupReport,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!(
            "backed up {} runs and {} artifact blobs ({}) to {}; restore with `runway serve --data-dir {}`",
            r.runs,
            r.blobs,
            bytesize::ByteSize(r.bytes),
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_events_line_up_under_their_header() {
        let head = follow_line("SEQ", "TIME", "KIND", "DETAIL");
        let row = follow_line("12", "2026-11-21 07:59:26.299", "artifact_written", "x");
        assert_eq!(head.find("KIND"), Some(32));
        assert_eq!(row.find("artifact"), head.find("KIND"));
        // The longest kind still leaves a space before the detail.
        assert_eq!(row.find(" x").map(|i| i + 1), head.find("DETAIL"));
        let short = follow_line("1", "2026-11-21 07:59:26.299", "queued", "hello v1");
        assert_eq!(short.find("hello"), head.find("DETAIL"));
    }
}
