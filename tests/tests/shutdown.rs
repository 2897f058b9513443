//! SIGTERM on the data plane: new connections stop, a stream in flight finishes, and the
//! process exits on its own.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use modelgate_operator::manifests::Manifests;
use modelgate_testkit::{binary, repo_path};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn sigterm_drains_streams_in_flight() {
    let dir = std::env::temp_dir().join(format!("modelgate-shutdown-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let m = Manifests::load(&[repo_path("examples/quickstart")]).expect("quickstart");
    let settings = m.settings.clone().unwrap_or_default();
    let compiled = m.compile(&settings, "default", 1);
    let table = dir.join("table.json");
    std::fs::write(&table, compiled.table.to_canonical_json()).expect("table");
    std::fs::write(dir.join("token"), "t0ken\n").expect("token");
    let (port, admin, metrics) = (free_port(), free_port(), free_port());
    let mut child = Command::new(binary("modelgate-dataplane", "modelgate-dataplane"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin}"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics}"))
        .arg("--admin-token-file")
        .arg(dir.join("token"))
        .arg("--table-file")
        .arg(&table)
        .args(["--drain-seconds", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the data plane");

    // Ready once the table file is loaded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                s.write_all(
                    b"GET /health/readiness HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                )
                .ok()?;
                let mut line = String::new();
                BufReader::new(s).read_line(&mut line).ok()?;
                Some(line.contains(" 200 "))
            });
        if ready == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the data plane never became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The probes answer on the metrics port too (sidecars keep their API on loopback).
    for (path, want) in [
        ("/health/readiness", " 200 "),
        ("/health/liveliness", " 200 "),
        ("/metrics", " 200 "),
        ("/v1/models", " 404 "),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", metrics)).expect("connect to metrics");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .expect("write");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("read");
        assert!(
            line.contains(want),
            "GET {path} on the metrics port: {line}"
        );
    }

    // large-chat streams a chunk every 150 ms.
    let body =
        r#"{"model":"large-chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut reader = BufReader::new(s);
    let mut first = String::new();
    reader.read_line(&mut first).expect("status line");
    assert!(first.contains(" 200 "), "{first}");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());

    let mut rest = String::new();
    for line in reader.lines() {
        let line = line.expect("the stream keeps flowing during the drain");
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(rest.contains("data: [DONE]"), "the stream finished: {rest}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the data plane did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no new connections after shutdown"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
