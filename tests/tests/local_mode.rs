//! `modelgate-operator local` as a user runs it: the quickstart served over HTTP, edits
//! picked up without a restart, a broken edit leaving the last good table serving, and
//! SIGTERM (what a container runtime or a supervisor sends) stopping it cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use modelgate_testkit::{binary, exit_within, repo_path};

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A minimal HTTP/1.1 exchange (no client library: this is what any client sends).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn local_mode_serves_reloads_and_survives_a_broken_edit() {
    let dir = std::env::temp_dir().join(format!("modelgate-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&repo_path("examples/quickstart"), &dir);
    let port = free_port();
    let mut child = Command::new(binary("modelgate-operator", "modelgate-operator"))
        .args(["local", "-f"])
        .arg(&dir)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--poll-ms", "100"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the gateway");
    let stderr = child.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
    }
    let mut gateway = Gateway(child);
    wait_until("readiness", || {
        http(port, "GET", "/health/readiness", "").is_some_and(|(s, _)| s == 200)
    });

    let (status, body) = http(
        port,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .expect("chat");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from"), "{body}");

    // A new deployment appears without a restart.
    std::fs::write(
        dir.join("extra.yaml"),
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: added}\nspec:\n  model: added-later\n  upstream: {provider: mock, mock: {response: added}}\n",
    )
    .expect("write");
    wait_until("the new model", || {
        http(port, "GET", "/v1/models", "").is_some_and(|(_, b)| b.contains("added-later"))
    });

    // A broken edit is reported; the last good table keeps serving.
    std::fs::write(
        dir.join("extra.yaml"),
        "apiVersion: modelgate.dev/v1alpha1\nkind: ModelDeployment\nspec: [oops\n",
    )
    .expect("write");
    wait_until("the error in the log", || {
        log.lock().is_ok_and(|l| l.contains("cannot be loaded"))
    });
    let (status, body) = http(
        port,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"added-later","messages":[]}"#,
    )
    .expect("chat");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("added"), "{body}");

    // SIGTERM drains and exits 0, as Ctrl-C does (not killed by the signal).
    let term = Command::new("kill")
        .args(["-TERM", &gateway.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let exit = exit_within(&mut gateway.0, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running 20 s after SIGTERM"));
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
