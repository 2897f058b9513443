//! Shared support for Modelgate's tests (dev-only).
//!
//! - [`binary`]: the path of one of the workspace's binaries, built on demand, so that
//!   end-to-end tests run the real programs as a user would.
//! - [`repo_path`]: a path inside the repository.
//! - [`upstream`]: a programmable mock upstream speaking the OpenAI and Azure OpenAI APIs;
//!   [`anthropic_upstream`], [`gemini_upstream`] and [`bedrock_upstream`] speak those
//!   providers' own wire protocols (Bedrock's with SigV4 verification and event-stream
//!   framing); they share [`script`] (the reply script, recorded requests, the serve loop).
//! - [`faults`]: a fault-injecting OpenAI upstream (resets, hangs, broken bodies and
//!   streams, slow and huge answers), per request or on a schedule.
//! - [`gateway`]: the real data plane, in-process on `127.0.0.1:0`, and table pushes.
//! - [`manifest`]: manifest builders, compiled with the operator's compiler.
//! - [`http`]: a small HTTP client (whole responses and SSE streams); [`raw`]: answers
//!   read straight off a `TcpStream`.
//! - [`pytest`]: runs a pytest suite of the repository as one Rust test; [`exit_within`]:
//!   waits, bounded, for a child process to exit.
//!
//! Everything listens and connects on `127.0.0.1` only.

#![forbid(unsafe_code)]

pub mod anthropic_upstream;
pub mod bedrock_upstream;
pub mod faults;
pub mod gateway;
pub mod gemini_upstream;
pub mod http;
pub mod manifest;
pub mod pytest;
pub mod raw;
pub mod script;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use faults::{Fault, FaultCounts, FaultUpstream, When};
pub use gateway::{ADMIN_TOKEN, Gateway, TempDir, chat_body};
pub use http::{Client, Resp, Sse};
pub use manifest::{Alias, Dep, Manifest, Secret, compile_ok, compile_yaml};
pub use upstream::{MockUpstream, Reply};

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls `check` every 20 ms until it returns true or `within` passes; returns whether it
/// did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `child` every 50 ms until it exits or `within` passes; its exit status, or `None`
/// while it still runs.
pub fn exit_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child process") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An address on 127.0.0.1 where nothing listens (connections are refused).
pub fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}

static BUILD: Mutex<()> = Mutex::new(());

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("repository root: {e}"))
}

/// A path inside the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// The path of the workspace binary `name` of package `package`, built first (a no-op
/// when it is up to date) with the same profile as the running test.
pub fn binary(package: &str, name: &str) -> PathBuf {
    // Tests run from <target>/<profile>/deps/<test>; binaries live in <target>/<profile>.
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current exe: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("unexpected test location {}", exe.display()))
        .to_owned();
    let target_dir = profile_dir
        .parent()
        .unwrap_or_else(|| panic!("unexpected test location {}", exe.display()))
        .to_owned();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    // `cargo nextest run --workspace` / `cargo test --workspace` build every binary with
    // the test build's features; a binary newer than every source file is that one.
    if is_fresh(&path) {
        return path;
    }
    // Otherwise build it the way the workspace test build does (same features, so the
    // artifacts are shared instead of built twice).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["test", "--no-run", "--quiet", "--workspace"])
        .arg("--target-dir")
        .arg(&target_dir);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {package}'s {name}: {e}"));
    assert!(status.success(), "building {package}'s {name} failed");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// True when `bin` exists and is newer than every Rust source and manifest of the repo.
fn is_fresh(bin: &std::path::Path) -> bool {
    fn newest(dir: &std::path::Path, newest_seen: &mut std::time::SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if name != "target" && name != ".git" && name != "node_modules" {
                    newest(&p, newest_seen);
                }
            } else if (p.extension().is_some_and(|x| x == "rs")
                || name == "Cargo.toml"
                || name == "Cargo.lock")
                && let Ok(m) = e.metadata().and_then(|m| m.modified())
                && m > *newest_seen
            {
                *newest_seen = m;
            }
        }
    }
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return false;
    };
    let mut newest_source = std::time::SystemTime::UNIX_EPOCH;
    newest(&repo_root(), &mut newest_source);
    built >= newest_source
}
