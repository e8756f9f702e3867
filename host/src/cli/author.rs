//! Authoring from an empty directory: `runway new` writes a workflow crate
//! that builds and deploys as it is, `runway build` builds one into a
//! `.wasm` beside its manifest.
//!
//! A new crate depends on a copy of this host's SDK (`vendor/runway-sdk`,
//! embedded in the binary with its WIT), so it builds outside any checkout
//! of Runway and always speaks the contract of the host that wrote it.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The SDK crate as shipped: every file `cargo package -p runway-sdk` takes.
const SDK: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../../guest-sdk/Cargo.toml")),
    ("README.md", include_str!("../../../guest-sdk/README.md")),
    ("src/lib.rs", include_str!("../../../guest-sdk/src/lib.rs")),
    (
        "src/testing.rs",
        include_str!("../../../guest-sdk/src/testing.rs"),
    ),
    (
        "wit/workflow.wit",
        include_str!("../../../guest-sdk/wit/workflow.wit"),
    ),
    (
        "wit/testing/harness.wit",
        include_str!("../../../guest-sdk/wit/testing/harness.wit"),
    ),
];

/// What a new workflow starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// A greeting: input, output, an input schema.
    Hello,
    /// Waits durably for a human's `approve` signal.
    Approval,
    /// Fetches a URL through the host's egress policy.
    Http,
    /// Drafts, critiques and revises with a model.
    Agent,
}

impl Template {
    /// The template's `runway.toml`, `src/lib.rs` and `tests/workflow.rs`.
    fn files(self) -> [&'static str; 3] {
        match self {
            Template::Hello => [
                include_str!("../../templates/hello/runway.toml"),
                include_str!("../../templates/hello/lib.rs"),
                include_str!("../../templates/hello/test.rs"),
            ],
            Template::Approval => [
                include_str!("../../templates/approval/runway.toml"),
                include_str!("../../templates/approval/lib.rs"),
                include_str!("../../templates/approval/test.rs"),
            ],
            Template::Http => [
                include_str!("../../templates/http/runway.toml"),
                include_str!("../../templates/http/lib.rs"),
                include_str!("../../templates/http/test.rs"),
            ],
            Template::Agent => [
                include_str!("../../templates/agent/runway.toml"),
                include_str!("../../templates/agent/lib.rs"),
                include_str!("../../templates/agent/test.rs"),
            ],
        }
    }
}

/// Writes a new workflow crate called `name` into `dir` (default
/// `./NAME`), which must not exist or be empty. Returns the directory.
pub fn new(name: &str, template: Template, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    crate::manifest::validate_slug(name).map_err(anyhow::Error::msg)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("{name:?} must start with a letter (it names a Rust crate too)");
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let empty = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
    if !empty {
        bail!(
            "{} exists and is not empty: choose another name or directory",
            dir.display()
        );
    }
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
    };
    let [manifest, lib, test] = template.files();
    let mut files: Vec<(PathBuf, String)> = vec![
        (
            "Cargo.toml".into(),
            fill(include_str!("../../templates/common/Cargo.toml")),
        ),
        (
            ".cargo/config.toml".into(),
            include_str!("../../templates/common/cargo-config.toml").to_owned(),
        ),
        (
            ".gitignore".into(),
            include_str!("../../templates/common/gitignore").to_owned(),
        ),
        ("runway.toml".into(), fill(manifest)),
        ("src/lib.rs".into(), fill(lib)),
        ("tests/workflow.rs".into(), fill(test)),
    ];
    for (path, text) in SDK {
        files.push((
            Path::new("vendor/runway-sdk").join(path),
            (*text).to_owned(),
        ));
    }
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

/// What `runway build` made.
#[derive(Debug, serde::Serialize)]
pub struct Built {
    pub slug: String,
    /// `dist/SLUG.wasm` in the crate.
    pub wasm: PathBuf,
    /// `dist/runway.toml`, the manifest copied beside it.
    pub manifest: PathBuf,
    pub bytes: u64,
}

/// The target workflows build for.
const TARGET: &str = "wasm32-wasip2";

/// Builds the workflow crate in `dir` for `wasm32-wasip2` in release, and
/// leaves `dist/SLUG.wasm` beside a copy of its `runway.toml`, so that
/// `runway deploy dist/SLUG.wasm` needs no `--manifest`.
pub fn build(dir: &Path) -> anyhow::Result<Built> {
    let cargo_toml = dir.join("Cargo.toml");
    let manifest_path = dir.join("runway.toml");
    if !cargo_toml.is_file() {
        bail!(
            "{} has no Cargo.toml: run runway build in a workflow crate (runway new NAME makes one)",
            dir.display()
        );
    }
    let manifest_text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "reading {} (a workflow crate has its manifest beside Cargo.toml)",
            manifest_path.display()
        )
    })?;
    let manifest = crate::manifest::Manifest::parse(&manifest_text)
        .with_context(|| format!("{}", manifest_path.display()))?;
    ensure_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--release", "--target", TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&cargo_toml)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        bail!("the build failed (cargo's messages are above)");
    }
    let wasm = built_component(&output.stdout).with_context(|| {
        format!(
            "cargo built no .wasm: is {} a cdylib ([lib] crate-type = [\"cdylib\"])?",
            cargo_toml.display()
        )
    })?;
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist).with_context(|| format!("creating {}", dist.display()))?;
    let out = dist.join(format!("{}.wasm", manifest.slug));
    let bytes = std::fs::copy(&wasm, &out)
        .with_context(|| format!("copying {} to {}", wasm.display(), out.display()))?;
    let manifest_copy = dist.join("runway.toml");
    std::fs::write(&manifest_copy, &manifest_text)
        .with_context(|| format!("writing {}", manifest_copy.display()))?;
    Ok(Built {
        slug: manifest.slug,
        wasm: out,
        manifest: manifest_copy,
        bytes,
    })
}

/// Runs `cargo test` in the workflow crate at `dir` for `wasm32-wasip2`,
/// with this binary as the test runner (`runway test-runner`), so the
/// tests need no `runway` on the PATH. Exits as cargo does.
pub fn test(dir: &Path, args: &[String]) -> anyhow::Result<std::process::ExitCode> {
    let cargo_toml = dir.join("Cargo.toml");
    if !cargo_toml.is_file() {
        bail!(
            "{} has no Cargo.toml: run runway test in a workflow crate (runway new NAME makes one)",
            dir.display()
        );
    }
    ensure_target()?;
    let exe = std::env::current_exe().context("finding this executable")?;
    // Cargo splits the variable at spaces.
    let runner = match exe.to_str() {
        Some(p) if !p.contains(char::is_whitespace) => format!("{p} test-runner"),
        _ => "runway test-runner".to_owned(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(["test", "--target", TARGET])
        .arg("--manifest-path")
        .arg(&cargo_toml)
        .args(args)
        .env("CARGO_TARGET_WASM32_WASIP2_RUNNER", runner)
        .status()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;
    Ok(match status.code() {
        Some(0) => std::process::ExitCode::SUCCESS,
        Some(c) => std::process::ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => std::process::ExitCode::FAILURE,
    })
}

/// The newest modification time among the crate's sources: `src/`,
/// `Cargo.toml`, `runway.toml` and `build.rs` (what a rebuild depends on
/// that an author edits).
pub fn sources_changed_at(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack = vec![
        dir.join("src"),
        dir.join("Cargo.toml"),
        dir.join("runway.toml"),
        dir.join("build.rs"),
    ];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if let Ok(t) = meta.modified() {
            newest = newest.max(Some(t));
        }
    }
    newest
}

/// The `.wasm` a `cargo build --message-format json` run produced: the
/// cdylib of the package built (cargo's own account, whatever the target
/// directory).
fn built_component(messages: &[u8]) -> Option<PathBuf> {
    let mut found = None;
    for line in messages.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !cdylib {
            continue;
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                found = Some(PathBuf::from(f));
            }
        }
    }
    found
}

/// Installs the `wasm32-wasip2` target with rustup if it is missing, or
/// says the one command to run.
fn ensure_target() -> anyhow::Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc (is Rust installed? https://rustup.rs)")?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target (rustup target add {TARGET})");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match added {
        Ok(s) if s.success() => Ok(()),
        _ => bail!("the {TARGET} target is missing: run `rustup target add {TARGET}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_crate_holds_the_sdk_and_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("my-flow");
        new("my-flow", Template::Approval, Some(&at)).unwrap();
        let cargo = std::fs::read_to_string(at.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"my-flow\""));
        assert!(cargo.contains("path = \"vendor/runway-sdk\""));
        let manifest = std::fs::read_to_string(at.join("runway.toml")).unwrap();
        assert_eq!(
            crate::manifest::Manifest::parse(&manifest).unwrap().slug,
            "my-flow"
        );
        assert!(at.join("vendor/runway-sdk/wit/workflow.wit").is_file());
        assert!(at.join(".cargo/config.toml").is_file());
        // Not over something that exists, nor with a name that is no slug.
        assert!(new("my-flow", Template::Hello, Some(&at)).is_err());
        assert!(new("My_Flow", Template::Hello, Some(&dir.path().join("x"))).is_err());
        assert!(new("9lives", Template::Hello, Some(&dir.path().join("y"))).is_err());
    }

    #[test]
    fn the_component_is_found_in_cargos_messages() {
        let messages = br#"{"reason":"compiler-artifact","target":{"kind":["lib"]},"filenames":["/t/libserde.rlib"]}
{"reason":"compiler-artifact","target":{"kind":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/my_flow.wasm"]}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            built_component(messages),
            Some(PathBuf::from("/t/wasm32-wasip2/release/my_flow.wasm"))
        );
        assert_eq!(built_component(b"not json"), None);
    }
}
