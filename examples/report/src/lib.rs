//! Reads a declared secret, writes a Markdown report artifact, and emits a
//! `progress` event per section.

use runway_sdk::{Level, Result, artifacts, emit, info, log, secrets};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    #[serde(default = "default_title")]
    title: String,
    #[serde(default)]
    sections: Vec<Section>,
}

#[derive(Deserialize)]
struct Section {
    heading: String,
    #[serde(default)]
    body: String,
}

fn default_title() -> String {
    "Report".into()
}

#[derive(Serialize)]
struct Output {
    artifact: String,
    digest: String,
    bytes: u64,
    sections: usize,
}

fn report(input: Input) -> Result<Output> {
    let run = info();
    // The token would authenticate an upload; here it only proves the
    // secret reached the guest (and nowhere else).
    let token = secrets::get("REPORT_TOKEN")?;
    log(
        Level::Info,
        format!("building {:?} for run {}", input.title, run.run_id),
    );

    let mut doc = format!(
        "# {}\n\n_{} v{}, run {}_\n",
        input.title, run.slug, run.version, run.run_id
    );
    for (i, s) in input.sections.iter().enumerate() {
        doc.push_str(&format!("\n## {}\n\n{}\n", s.heading, s.body));
        emit(
            "progress",
            &serde_json::json!({ "section": i + 1, "of": input.sections.len(), "heading": s.heading }),
        )?;
    }
    doc.push_str(&format!(
        "\n---\nsigned with a {}-character token\n",
        token.chars().count()
    ));

    let written = artifacts::write_with(
        "report.md",
        "text/markdown; charset=utf-8",
        &doc,
        Some(&serde_json::json!({ "title": input.title })),
    )?;
    // Read it back: artifacts are addressable within the run.
    let back = artifacts::read("report.md")?;
    if back.len() as u64 != written.size {
        return Err(runway_sdk::Error::new(
            "REPORT_CORRUPT",
            "read back a different size",
        ));
    }
    Ok(Output {
        artifact: written.name,
        digest: written.digest,
        bytes: written.size,
        sections: input.sections.len(),
    })
}

runway_sdk::workflow!(report);
