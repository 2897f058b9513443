//! The Helm chart (`charts/modelgate/`), the install guide (`docs/install.md`) and the
//! images' Dockerfiles: runs the pytest suite in `tests/chart/` (lint, render, validate,
//! RBAC, security, the guide's commands; see `tests/chart/conftest.py`) and checks what
//! only the Rust code can:
//!
//! - before the suite, `modelgate-operator import litellm` (the library behind the CLI) on
//!   the guide's LiteLLM config with the guide's own arguments, so the guide's next steps
//!   run on the importer's real output;
//! - after it, every operator command line the chart rendered parses with the real
//!   `modelgate-operator run` flags, every settings document it rendered is a valid
//!   `RouterSettings`, and the resources the guide applies compile, with the settings of
//!   its last `helm upgrade`, into a routing table without a single error.
//!
//! It builds nothing but this test; Python comes from `target/pyenv` (see
//! `modelgate_testkit::pytest`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args as _, FromArgMatches as _};
use modelgate_crds::RouterSettings;
use modelgate_operator::compile::Severity;
use modelgate_operator::controller::Config;
use modelgate_operator::import::litellm::{self, LitellmArgs};
use modelgate_operator::manifests::Manifests;
use modelgate_testkit::{pytest, repo_path};

/// The release namespace the suite renders the chart into.
const RELEASE_NS: &str = "modelgate-system";

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelgate-chart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch folder");
    dir
}

/// The guide's `cat > NAME <<'EOF' … EOF` file and its `modelgate-operator import litellm`
/// command line (continuation lines joined), split into words.
fn guide_import(guide: &str) -> (String, String, Vec<String>) {
    let lines: Vec<&str> = guide.lines().collect();
    let heredoc = |line: &str| {
        line.strip_prefix("cat > ")
            .and_then(|rest| rest.strip_suffix(" <<'EOF'"))
            .filter(|name| name.starts_with("litellm"))
            .map(str::to_owned)
    };
    let (at, name) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| heredoc(l).map(|name| (i, name)))
        .expect("docs/install.md has no `cat > litellm….yaml <<'EOF'` block");
    let body: Vec<&str> = lines[at + 1..]
        .iter()
        .copied()
        .take_while(|l| *l != "EOF")
        .collect();
    let body = body.join("\n") + "\n";
    let mut command = String::new();
    let mut joining = false;
    for line in guide.lines() {
        let line = line.trim();
        if line.starts_with("modelgate-operator import litellm") || joining {
            command.push_str(line.trim_end_matches('\\'));
            command.push(' ');
            joining = line.ends_with('\\');
            if !joining {
                break;
            }
        }
    }
    assert!(
        !command.is_empty(),
        "docs/install.md has no `modelgate-operator import litellm` command"
    );
    // The guide's command has no quoting: plain words.
    let argv: Vec<String> = command
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    (name, body, argv)
}

/// Runs the importer as the CLI would, in `dir`; leaves `dir/out/`, `dir/args.json` and
/// `dir/stderr.txt` for the suite's `modelgate-operator` stand-in.
fn run_guide_import(dir: &Path) {
    let guide =
        std::fs::read_to_string(repo_path("docs/install.md")).expect("read docs/install.md");
    let (name, body, argv) = guide_import(&guide);
    std::fs::write(dir.join(&name), body).expect("write the LiteLLM config");
    assert_eq!(argv[..2], ["import", "litellm"], "{argv:?}");
    let cmd = LitellmArgs::augment_args(clap::Command::new("litellm"));
    let matches = cmd
        .try_get_matches_from(
            std::iter::once("litellm").chain(argv[2..].iter().map(String::as_str)),
        )
        .unwrap_or_else(|e| panic!("the guide's `{}` does not parse: {e}", argv.join(" ")));
    let mut args = LitellmArgs::from_arg_matches(&matches).expect("LitellmArgs");
    assert_eq!(
        args.file,
        Path::new(&name),
        "the guide imports the file it wrote"
    );
    let out = args
        .output_dir
        .clone()
        .expect("the guide's import writes --output-dir");
    let produced = dir.join(out);
    args.file = dir.join(&args.file);
    args.output_dir = Some(produced.clone());
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    litellm::run_with(&args, &mut stdout, &mut stderr).unwrap_or_else(|e| {
        panic!(
            "the guide's import fails: {e:#}\n{}",
            String::from_utf8_lossy(&stderr)
        )
    });
    // The stand-in copies from `out/` whatever the guide's --output-dir is.
    if produced != dir.join("out") {
        std::fs::rename(produced, dir.join("out")).expect("move the importer's output");
    }
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        !stderr.contains("warning:"),
        "the guide's LiteLLM config should import without a warning:\n{stderr}"
    );
    std::fs::write(dir.join("stderr.txt"), stderr.as_bytes()).expect("write stderr.txt");
    std::fs::write(
        dir.join("args.json"),
        serde_json::to_string(&argv).expect("json"),
    )
    .expect("write args.json");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    out.sort();
    out
}

/// `modelgate-operator run` as `main.rs` defines it: the controller's flags and the log format.
fn run_command() -> clap::Command {
    Config::augment_args(clap::Command::new("run")).arg(
        clap::Arg::new("log_format")
            .long("log-format")
            .value_parser(["json", "text"]),
    )
}

fn check_operator_args(dir: &Path) -> usize {
    let paths = files(&dir.join("operator-args"));
    for path in &paths {
        let args: Vec<String> = serde_json::from_str(&std::fs::read_to_string(path).expect("read"))
            .expect("a JSON list of arguments");
        assert_eq!(
            args.first().map(String::as_str),
            Some("run"),
            "{}",
            path.display()
        );
        let matches = run_command()
            .try_get_matches_from(&args)
            .unwrap_or_else(|e| {
                panic!(
                    "{}: the chart's operator arguments do not parse: {e}\n{args:?}",
                    path.display()
                )
            });
        let config = Config::from_arg_matches(&matches).expect("Config");
        assert!(
            config
                .admin_token_file
                .starts_with("/etc/modelgate/admin-token/"),
            "{}: {config:?}",
            path.display()
        );
        assert_eq!(config.listen.port(), 8080, "{}", path.display());
    }
    paths.len()
}

fn check_settings(paths: &[PathBuf]) {
    for path in paths {
        let text = std::fs::read_to_string(path).expect("read a settings document");
        let settings = RouterSettings::from_yaml(&text).unwrap_or_else(|e| {
            panic!(
                "{}: not a RouterSettings document: {e}\n{text}",
                path.display()
            )
        });
        let problems = settings.validate();
        assert!(
            problems.is_empty(),
            "{}: {problems:?}\n{text}",
            path.display()
        );
    }
}

fn check_guide_compiles(dir: &Path) {
    let manifests = Manifests::load(&[dir.join("manifests.yaml")])
        .unwrap_or_else(|e| panic!("the guide's resources do not load: {e}"));
    let text = std::fs::read_to_string(dir.join("settings.yaml")).expect("read settings");
    let settings = RouterSettings::from_yaml(&text).expect("settings");
    let compiled = manifests.compile(&settings, RELEASE_NS, 1);
    let mut errors = Vec::new();
    for (key, diags) in compiled.diagnostics.iter() {
        for d in diags {
            if d.severity == Severity::Error {
                errors.push(format!("{key}: {d}"));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "the guide's resources would be rejected:\n{}",
        errors.join("\n")
    );
    if let Err(problems) = compiled.table.validate() {
        panic!("the guide's routing table is invalid: {problems:?}");
    }
    let t = &compiled.table;
    assert!(
        t.deployments.len() >= 4 && !t.aliases.is_empty(),
        "{} deployments, {} aliases",
        t.deployments.len(),
        t.aliases.len()
    );
}

#[test]
fn helm_chart_suite() {
    let dir = scratch();
    let imported = dir.join("imported");
    std::fs::create_dir_all(&imported).expect("create");
    run_guide_import(&imported);
    let artifacts = dir.join("artifacts");
    // Lint, renders and kubernetes-validate take ~40 s; a loaded machine is slower.
    pytest::run(
        "tests/chart",
        &[
            "pytest",
            "helm_python",
            "kubernetes_validate",
            "jsonschema",
            "yaml",
        ],
        &[
            ("MODELGATE_CHART_ARTIFACTS", artifacts.clone()),
            ("MODELGATE_CHART_IMPORTED", imported),
        ],
        Duration::from_secs(300),
    );

    let parsed = check_operator_args(&artifacts);
    assert!(
        parsed >= 10,
        "only {parsed} operator command lines were rendered"
    );
    let mut settings = files(&artifacts.join("settings"));
    settings.push(artifacts.join("doc/settings.yaml"));
    check_settings(&settings);
    check_guide_compiles(&artifacts.join("doc"));
    let _ = std::fs::remove_dir_all(&dir);
}
