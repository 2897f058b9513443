//! The operator's command-line tools, run as real processes on real files.

use std::path::Path;
use std::process::{Command, Output};

use modelgate_testkit::{binary, repo_path};

fn operator(args: &[&str]) -> Output {
    Command::new(binary("modelgate-operator", "modelgate-operator"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run modelgate-operator: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("modelgate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

#[test]
fn check_accepts_the_quickstart() {
    let quickstart = repo_path("examples/quickstart");
    let out = operator(&["check", "-f", &quickstart.to_string_lossy()]);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("4 deployments, 3 groups, 2 aliases") && stderr.contains("0 errors"),
        "{stderr}"
    );
}

#[test]
fn check_reports_bad_objects_and_keeps_the_rest() {
    let dir = temp_dir("bad");
    std::fs::write(
        dir.join("bad.yaml"),
        r#"
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {openai: sk-cli-test-secret}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelDeployment
metadata: {name: good}
spec:
  model: gpt-4o
  upstream:
    provider: openai
    credentials: {secretKeyRef: {name: keys, key: openai}}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelDeployment
metadata: {name: no-secret}
spec:
  model: gpt-4o
  upstream:
    provider: openai
    credentials: {secretKeyRef: {name: missing, key: openai}}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelGroupAlias
metadata: {name: loop-a}
spec: {alias: loop-a, targets: [{model: loop-b}]}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelGroupAlias
metadata: {name: loop-b}
spec: {alias: loop-b, targets: [{model: loop-a}]}
"#,
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let out = operator(&["check", "-f", &dir.to_string_lossy(), "--print-table"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}");
    assert!(
        stdout.contains("ModelDeployment default/no-secret: error: MissingSecret: Secret default/missing does not exist"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ModelGroupAlias default/loop-a: error: AliasCycle"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"default/good\""),
        "the good deployment is compiled in"
    );
    assert!(
        !stdout.contains("sk-cli-test-secret"),
        "the printed table is redacted"
    );
    assert!(stdout.contains("<redacted>"));
}

#[test]
fn check_gives_a_clear_error_for_broken_yaml() {
    let dir = temp_dir("yaml");
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelDeployment\nspec: [unclosed\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let out = operator(&["check", "-f", &file.to_string_lossy()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("document 1"),
        "{stderr}"
    );
}

#[test]
fn imported_litellm_config_compiles_once_its_secrets_exist() {
    let dir = temp_dir("import");
    let config = repo_path("operator/tests/fixtures/litellm/proxy_server_config.yaml");
    let out = operator(&[
        "import",
        "litellm",
        &config.to_string_lossy(),
        "--output-dir",
        &dir.to_string_lossy(),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The user is told which Secret to create; create it with test values.
    // The command spans several lines joined by trailing backslashes.
    let start = stderr
        .find("kubectl create secret generic")
        .unwrap_or_else(|| panic!("no kubectl command in {stderr}"));
    let mut command = String::new();
    for line in stderr[start..].lines() {
        command.push_str(line.trim_end_matches('\\'));
        command.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    let names: Vec<&str> = command
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--from-literal="))
        .filter_map(|w| w.split('=').next())
        .filter(|n| !n.is_empty())
        .collect();
    assert!(!names.is_empty(), "{command}");
    let secret_name = command
        .split_whitespace()
        .skip_while(|w| *w != "generic")
        .nth(1)
        .unwrap_or_else(|| panic!("no secret name in {command}"));
    let mut secret =
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret_name}}}\nstringData:\n");
    for n in &names {
        secret.push_str(&format!("  {n}: test-value-for-{n}\n"));
    }
    std::fs::write(dir.join("env-secret.yaml"), secret).unwrap_or_else(|e| panic!("write: {e}"));
    let check = operator(&[
        "check",
        "-f",
        &dir.join("resources.yaml").to_string_lossy(),
        "-f",
        &dir.join("env-secret.yaml").to_string_lossy(),
        "--settings",
        &dir.join("settings.yaml").to_string_lossy(),
    ]);
    assert!(
        check.status.success(),
        "stdout: {}\nstderr: {}",
        text(&check.stdout),
        text(&check.stderr)
    );
    assert!(Path::new(&dir.join("settings.yaml")).exists());
}
