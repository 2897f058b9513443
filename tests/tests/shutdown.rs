//! SIGTERM on the data plane: readiness turns 503 on the probe port while it drains,
//! new connections to the API are refused (and a client's next request goes to another
//! pod, here a second process), a stream in flight finishes, and the process exits on
//! its own.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use modelgate_operator::manifests::Manifests;
use modelgate_testkit::{Dep, Manifest, binary, compile_ok, exit_within, repo_path};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The status line of `GET path` on `port`, or `None` when the connection is refused.
fn get_status(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    Some(line)
}

/// A `modelgate-dataplane` process serving `table`: (child, API port, metrics port).
fn dataplane(dir: &std::path::Path, name: &str, table: &[u8]) -> (std::process::Child, u16, u16) {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, table).expect("table");
    std::fs::write(dir.join("token"), "t0ken\n").expect("token");
    let (port, admin, metrics) = (free_port(), free_port(), free_port());
    let child = Command::new(binary("modelgate-dataplane", "modelgate-dataplane"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin}"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics}"))
        .arg("--admin-token-file")
        .arg(dir.join("token"))
        .arg("--table-file")
        .arg(&file)
        .args(["--drain-seconds", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the data plane");
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_status(port, "/health/readiness").is_none_or(|l| !l.contains(" 200 ")) {
        assert!(Instant::now() < deadline, "{name} never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, port, metrics)
}

fn chat_on(port: u16, stream: bool) -> Option<BufReader<TcpStream>> {
    let body = format!(
        r#"{{"model":"slow","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    Some(BufReader::new(s))
}

/// Two pods behind one Service: SIGTERM to one while it streams. Its readiness turns 503
/// (the probe port stays open during the drain), its API refuses new connections so a
/// client's next request lands on the other pod, the stream it had started finishes
/// whole, and it exits once drained.
#[test]
fn sigterm_turns_readiness_503_and_new_requests_go_elsewhere() {
    let dir = std::env::temp_dir().join(format!("modelgate-drain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    // A stream of 30 words, 100 ms apart: about 3 s.
    let words: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
    let m = Manifest::new().with(Dep::mock("slow", "slow").mock_answer(&words.join(" "), "100ms"));
    let table = compile_ok(&m.to_yaml(), 1).to_canonical_json();
    let (mut a, a_port, a_metrics) = dataplane(&dir, "a", &table);
    let (mut b, b_port, _) = dataplane(&dir, "b", &table);

    let mut stream = chat_on(a_port, true).expect("a stream on pod a");
    let mut status = String::new();
    stream.read_line(&mut status).expect("status line");
    assert!(status.contains(" 200 "), "{status}");

    let term = Command::new("kill")
        .args(["-TERM", &a.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());

    // Readiness 503 while draining, on the probe port.
    let deadline = Instant::now() + Duration::from_secs(2);
    let readiness = loop {
        let line = get_status(a_metrics, "/health/readiness");
        if line.as_deref().is_some_and(|l| l.contains(" 503 ")) || Instant::now() > deadline {
            break line;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        readiness.as_deref().is_some_and(|l| l.contains(" 503 ")),
        "readiness while draining: {readiness:?}"
    );
    assert!(
        get_status(a_metrics, "/health/liveliness").is_some_and(|l| l.contains(" 200 ")),
        "still alive while draining"
    );
    // New connections to the draining pod's API are refused; the client (a Service, a
    // retrying SDK) goes to the other pod, which answers.
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(("127.0.0.1", a_port)).is_ok() {
        assert!(Instant::now() < deadline, "pod a still accepts connections");
        std::thread::sleep(Duration::from_millis(20));
    }
    let served_by = [a_port, b_port].into_iter().find_map(|port| {
        let mut r = chat_on(port, false)?;
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        line.contains(" 200 ").then_some(port)
    });
    assert_eq!(
        served_by,
        Some(b_port),
        "a new request is served by the other pod"
    );

    // The stream started before the signal finishes whole.
    let mut rest = String::new();
    for line in stream.lines() {
        let line = line.expect("the stream keeps flowing during the drain");
        rest.push_str(&line);
        rest.push('\n');
    }
    for w in &words {
        assert!(
            rest.contains(w.as_str()),
            "{w} missing from the stream: {rest}"
        );
    }
    assert!(rest.contains("data: [DONE]"), "the stream finished: {rest}");

    let status = exit_within(&mut a, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("pod a did not exit after draining"));
    assert!(status.success(), "{status}");
    assert!(
        get_status(a_metrics, "/health/readiness").is_none(),
        "probe port closed at exit"
    );
    let _ = b.kill();
    let _ = b.wait();
    let _ = std::fs::remove_dir_all(&dir);
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

    let status = exit_within(&mut child, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the data plane did not exit after draining"));
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no new connections after shutdown"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
