//! `runway test-runner TEST_WASM [ARGS]`: how `cargo test` runs a workflow
//! crate's tests. The crate's `.cargo/config.toml` names it as the runner
//! for `wasm32-wasip2`, so cargo hands it each test binary — a WASI command
//! component — with libtest's arguments.
//!
//! A test that panics aborts its instance (wasm has no unwinding), so each
//! test runs in an instance of its own: the binary lists its tests, then
//! every test runs alone and a failure ends only that test. Tests reach the
//! [`Harness`] through `runway:testing/harness`; the workflow they run is
//! the crate's cdylib from the same `cargo test` build (`deps/NAME.wasm`,
//! built because the crate is also an `rlib`).

use super::harness::Harness;
use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/testing",
        world: "runway:testing/tester",
        imports: { default: async },
    });
}

/// libtest's exit code for failed tests.
const FAILED: u8 = 101;
/// Most output kept of one test.
const MAX_OUTPUT: usize = 4 << 20;

/// Runs the tests of `test_wasm` as `cargo test` asked (`args`).
pub async fn run(test_wasm: &Path, args: &[String]) -> anyhow::Result<ExitCode> {
    let runner = Runner::new(test_wasm)?;
    // What libtest answers itself: run once, as it is.
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "--list" | "--help" | "-h"))
    {
        let ran = runner.instance(args, Output::Inherit).await?;
        return Ok(if ran.passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(FAILED)
        });
    }
    let tests = runner.list(args).await?;
    // Ignored tests are said so without running (unless asked for).
    let ignored_too = args
        .iter()
        .any(|a| a == "--ignored" || a == "--include-ignored");
    let ignored_tests = if ignored_too {
        Vec::new()
    } else {
        let mut only_ignored = args.to_vec();
        only_ignored.push("--ignored".into());
        runner.list(&only_ignored).await?
    };
    let nocapture = args.iter().any(|a| a == "--nocapture");
    // libtest's own capture would lose a panic's message with the
    // instance: the output is captured here instead.
    let mut each = ["--exact", "--test-threads=1", "--nocapture"]
        .map(String::from)
        .to_vec();
    for flag in ["--ignored", "--include-ignored"] {
        if args.iter().any(|a| a == flag) {
            each.push(flag.to_owned());
        }
    }
    let s = if tests.len() == 1 { "" } else { "s" };
    println!(
        "\nrunning {} test{s} (each in an instance of its own)",
        tests.len()
    );
    let started = Instant::now();
    let (mut passed, mut ignored, mut failures) = (0, 0, Vec::new());
    for test in &tests {
        if ignored_tests.contains(test) {
            ignored += 1;
            println!("test {test} ... ignored");
            continue;
        }
        let mut test_args = vec![test.clone()];
        test_args.extend(each.iter().cloned());
        let output = if nocapture {
            Output::Inherit
        } else {
            Output::Capture
        };
        let t0 = Instant::now();
        let ran = runner.instance(&test_args, output).await?;
        let took = t0.elapsed();
        let verdict = if ran.passed {
            passed += 1;
            "ok"
        } else {
            failures.push((test, ran.output));
            "FAILED"
        };
        println!("test {test} ... {verdict} ({})", millis(took));
    }
    if !failures.is_empty() {
        println!("\nfailures:\n");
        for (test, output) in &failures {
            println!("---- {test} ----\n{output}");
        }
        println!("failures:");
        for (test, _) in &failures {
            println!("    {test}");
        }
    }
    let result = if failures.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {result}. {passed} passed; {} failed; {ignored} ignored; finished in {:.2}s\n",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Where a test instance's stdout and stderr go.
#[derive(Clone, Copy)]
enum Output {
    Inherit,
    Capture,
}

/// How one instance of the test binary ended.
struct Ran {
    passed: bool,
    /// Its stdout and stderr, when captured; a trap's message besides.
    output: String,
}

/// The compiled test binary and what its instances link to.
struct Runner {
    engine: Engine,
    component: Component,
    linker: Linker<TestState>,
    program: String,
    harness: Arc<LazyHarness>,
}

impl Runner {
    /// The tests `args` select, by name.
    async fn list(&self, args: &[String]) -> anyhow::Result<Vec<String>> {
        let mut list_args = args.to_vec();
        list_args.extend(["--list", "--format", "terse"].map(String::from));
        let listed = self.instance(&list_args, Output::Capture).await?;
        if !listed.passed {
            eprint!("{}", listed.output);
            bail!("{} could not list its tests", self.program);
        }
        Ok(listed
            .output
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(str::to_owned)
            .collect())
    }

    fn new(test_wasm: &Path) -> anyhow::Result<Runner> {
        let files = CrateFiles::locate(test_wasm)?;
        let engine = Engine::new(Config::new().wasm_component_model(true))?;
        let component = compile(&engine, test_wasm, &files.cache.join("tests"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::runway::testing::harness::add_to_linker::<TestState, HasSelf<TestState>>(
            &mut linker,
            |s| s,
        )?;
        trap_workflow_imports(&mut linker, &engine, &component)?;
        let program = test_wasm
            .file_name()
            .map_or_else(|| "test".into(), |n| n.to_string_lossy().into_owned());
        Ok(Runner {
            engine,
            component,
            linker,
            program,
            harness: Arc::new(LazyHarness {
                files,
                harness: OnceLock::new(),
            }),
        })
    }

    /// One instance of the test binary, run with `args`.
    async fn instance(&self, args: &[String], output: Output) -> anyhow::Result<Ran> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(&self.program).args(args).inherit_env();
        let pipe = MemoryOutputPipe::new(MAX_OUTPUT);
        match output {
            Output::Inherit => wasi.inherit_stdout().inherit_stderr(),
            Output::Capture => wasi.stdout(pipe.clone()).stderr(pipe.clone()),
        };
        let state = TestState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            harness: self.harness.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        let command = wasmtime_wasi::p2::bindings::Command::instantiate_async(
            &mut store,
            &self.component,
            &self.linker,
        )
        .await
        .map_err(anyhow::Error::from)
        .context("instantiating the test binary")?;
        let result = command.wasi_cli_run().call_run(&mut store).await;
        let mut trap = String::new();
        let passed = match result {
            Ok(r) => r.is_ok(),
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => exit.0 == 0,
                None => {
                    // A panic ends the instance with `unreachable`; its
                    // message is in the output already.
                    trap = format!("\n(the test's instance ended: {})\n", e.root_cause());
                    false
                }
            },
        };
        let mut text = String::from_utf8_lossy(&pipe.contents()).into_owned();
        text.push_str(&trap);
        if matches!(output, Output::Inherit) && !trap.is_empty() {
            eprint!("{trap}");
        }
        Ok(Ran {
            passed,
            output: text,
        })
    }
}

/// A unit-test binary imports what the workflow does: calling that outside
/// a run traps, saying where such a test belongs.
fn trap_workflow_imports(
    linker: &mut Linker<TestState>,
    engine: &Engine,
    component: &Component,
) -> anyhow::Result<()> {
    use wasmtime::component::types::ComponentItem;
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if !name.starts_with("runway:workflow/") {
            continue;
        }
        let mut linked = linker.instance(name)?;
        for (function, item) in instance.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let call = format!("{name}#{function}");
                linked.func_new(function, move |_, _, _, _| {
                    Err(wasmtime::format_err!(
                        "{call}: only a workflow run can call the host; run it in a test with runway_sdk::testing::World"
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// Compiles a component, or loads it from `cache` if this binary was
/// compiled before (the previous compilations of the same test binary are
/// removed).
fn compile(engine: &Engine, wasm: &Path, cache: &Path) -> anyhow::Result<Component> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let stem = wasm
        .file_stem()
        .map_or_else(|| "test".into(), |s| s.to_string_lossy().into_owned());
    let mut h = Sha256::new();
    h.update(&bytes);
    let mut engine_hash = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut engine_hash);
    h.update(std::hash::Hasher::finish(&engine_hash).to_le_bytes());
    let key = hex::encode(&h.finalize()[..12]);
    let path = cache.join(format!("{stem}.{key}.cwasm"));
    if path.exists() {
        // SAFETY: written by `Component::serialize` of an engine with the
        // same compatibility hash (in the key), in a directory of the
        // crate's own target dir.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok(c);
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a component", wasm.display()))?;
    if std::fs::create_dir_all(cache).is_ok()
        && let Ok(serialized) = component.serialize()
    {
        if let Ok(entries) = std::fs::read_dir(cache) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{stem}."))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, serialized).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok(component)
}

/// The crate under test, found from the test binary and cargo's
/// environment.
struct CrateFiles {
    /// The workflow component `cargo test` built.
    component: PathBuf,
    manifest: PathBuf,
    /// Scenario data directories (each removed after its run).
    work: PathBuf,
    /// Compiled components.
    cache: PathBuf,
}

impl CrateFiles {
    fn locate(test_wasm: &Path) -> anyhow::Result<CrateFiles> {
        let crate_dir = match std::env::var_os("CARGO_MANIFEST_DIR") {
            Some(d) => PathBuf::from(d),
            None => std::env::current_dir()?,
        };
        let cargo_toml = crate_dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&cargo_toml)
            .with_context(|| format!("reading {}", cargo_toml.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}", cargo_toml.display()))?;
        let lib = table
            .get("lib")
            .and_then(|l| l.get("name"))
            .or_else(|| table.get("package").and_then(|p| p.get("name")))
            .and_then(toml::Value::as_str)
            .map(|n| n.replace('-', "_"))
            .with_context(|| format!("{} names no package", cargo_toml.display()))?;
        let deps = test_wasm.parent().unwrap_or(Path::new("."));
        // `<target>/wasm32-wasip2/<profile>/deps/<test>.wasm`
        let target = test_wasm
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "wasm32-wasip2"))
            .and_then(Path::parent)
            .unwrap_or(deps);
        let ours = target.join("runway-test");
        Ok(CrateFiles {
            component: deps.join(format!("{lib}.wasm")),
            manifest: crate_dir.join("runway.toml"),
            work: ours.join("runs"),
            cache: ours.join("cache"),
        })
    }
}

/// The harness, made on the first scenario (a binary of plain unit tests
/// needs no component).
struct LazyHarness {
    files: CrateFiles,
    harness: OnceLock<Result<Harness, String>>,
}

impl LazyHarness {
    fn get(&self) -> Result<&Harness, String> {
        self.harness
            .get_or_init(|| {
                let f = &self.files;
                let wasm = std::fs::read(&f.component).map_err(|e| {
                    format!(
                        "{}: {e}. The tests run the crate's own component, which cargo builds for them only if the crate is an rlib too: crate-type = [\"cdylib\", \"rlib\"] in Cargo.toml",
                        f.component.display()
                    )
                })?;
                let manifest = std::fs::read_to_string(&f.manifest)
                    .map_err(|e| format!("{}: {e}", f.manifest.display()))?;
                Harness::new(wasm, manifest, f.work.clone(), f.cache.clone())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// One instance's state: WASI, and the harness its tests call.
struct TestState {
    wasi: WasiCtx,
    table: ResourceTable,
    harness: Arc<LazyHarness>,
}

impl WasiView for TestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::runway::testing::harness::Host for TestState {
    async fn run(&mut self, scenario: String) -> Result<String, String> {
        let harness = self.harness.clone();
        let harness = harness.get()?;
        harness.run_json(&scenario).await
    }
}
