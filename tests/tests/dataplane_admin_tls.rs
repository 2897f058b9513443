//! The admin API over TLS, on real sockets, with certificates made at test time: the
//! operator's client pushes tables and reads health reports over TLS and authenticates the
//! pod (its CA, the pod's IP or a fixed server name); plain HTTP, other CAs and wrong
//! names fail; rotated certificate files serve new connections without a restart, and a
//! broken rotation leaves the previous pair serving; a stalled handshake holds up neither
//! other clients nor shutdown; the binary's flags.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use modelgate_dataplane::tls::TlsFiles;
use modelgate_dataplane::{App, Config, bind, client, run};
use modelgate_dataplane_api::RoutingTable;
use modelgate_operator::push::{DataPlaneClient, PushError, TlsOptions, TokenFile};
use modelgate_testkit::{ADMIN_TOKEN, Client, Dep, Manifest, TempDir, binary, compile_ok};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The name in certificates made for a DNS name only.
const DNS_NAME: &str = "dataplane.modelgate.svc";

/// A certificate authority made for one test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate (PEM) and its private key (PEM).
struct Pair {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (IP addresses or DNS names).
    fn issue(&self, names: &[&str]) -> Pair {
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("server certificate parameters");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn write_pair(files: &TlsFiles, pair: &Pair) {
    std::fs::write(&files.cert, &pair.cert).expect("write the certificate");
    std::fs::write(&files.key, &pair.key).expect("write the key");
}

/// Files for a pair and the admin token in `dir`, the pair written.
fn files_in(dir: &Path, pair: &Pair) -> (TlsFiles, PathBuf) {
    let files = TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    write_pair(&files, pair);
    let token = dir.join("admin-token");
    std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).expect("write the admin token");
    (files, token)
}

/// A data plane in-process with its admin API over TLS; stops when dropped.
struct TlsGateway {
    addr: SocketAddr,
    admin: SocketAddr,
    files: TlsFiles,
    token: Arc<TokenFile>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl TlsGateway {
    async fn start(pair: &Pair) -> TlsGateway {
        Self::start_with(pair, Duration::from_secs(2)).await
    }

    async fn start_with(pair: &Pair, drain: Duration) -> TlsGateway {
        let dir = TempDir::new("admin-tls");
        let (files, token) = files_in(dir.path(), pair);
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            admin_listen: Some("127.0.0.1:0".parse().expect("address")),
            metrics_listen: None,
            admin_token_file: Some(token.clone()),
            admin_tls: Some(files.clone()),
            ca_bundle: None,
            drain_timeout: drain,
            ..Config::new("127.0.0.1:0".parse().expect("address"))
        };
        let no_proxy = hyper_util::client::proxy::matcher::Matcher::builder().build();
        let app = App::new(client::build_with(None, no_proxy).expect("the upstream client"));
        // Bound (connections queue) once this returns: no need to wait for serving.
        let listeners = bind(&config).await.expect("bind the data plane");
        let addr = listeners.public.local_addr().expect("public address");
        let admin = listeners
            .admin
            .as_ref()
            .expect("an admin listener")
            .local_addr()
            .expect("admin address");
        assert!(listeners.admin_tls.is_some(), "the pair is loaded by bind");
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(async move { run(app, &config, listeners, rx).await });
        TlsGateway {
            addr,
            admin,
            files,
            token: Arc::new(TokenFile::new(token)),
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    /// The operator's client, trusting `ca` (none: plain HTTP), checking `server_name`
    /// instead of the pod's IP when given.
    fn client(&self, ca: Option<&Ca>, server_name: Option<&str>) -> DataPlaneClient {
        operator_client(Arc::clone(&self.token), ca, server_name)
    }
}

fn operator_client(
    token: Arc<TokenFile>,
    ca: Option<&Ca>,
    server_name: Option<&str>,
) -> DataPlaneClient {
    let tls = TlsOptions {
        ca_pem: ca.map(|c| c.pem.clone().into_bytes()),
        server_name: server_name.map(str::to_owned),
    };
    DataPlaneClient::new(token, &tls, Duration::from_secs(5)).expect("the operator's client")
}

fn table(revision: u64) -> RoutingTable {
    compile_ok(
        &Manifest::new().with(Dep::mock("a", "chat")).to_yaml(),
        revision,
    )
}

fn table_body(table: &RoutingTable) -> Bytes {
    Bytes::from(table.to_canonical_json())
}

/// The message of an `Unreachable` error; panics on success or any other error.
#[track_caller]
fn unreachable<T: std::fmt::Debug>(result: Result<T, PushError>) -> String {
    match result {
        Err(PushError::Unreachable { message, .. }) => message,
        other => panic!("expected PushError::Unreachable, got {other:?}"),
    }
}

/// Asserts that the pod answers a health report to a client trusting `ca`.
async fn answers(gw: &TlsGateway, ca: &Ca, server_name: Option<&str>) -> u64 {
    let client = gw.client(Some(ca), server_name);
    let report = client
        .health_report(gw.admin)
        .await
        .unwrap_or_else(|e| panic!("health report over TLS: {e}"));
    report.revision.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_health_reports_travel_over_tls() {
    let ca = Ca::new("modelgate test CA");
    // The pod's IP and its DNS name, as cert-manager would issue it.
    let gw = TlsGateway::start(&ca.issue(&["127.0.0.1", DNS_NAME])).await;
    let client = gw.client(Some(&ca), None);

    let t1 = table(1);
    let served = client
        .push(gw.admin, table_body(&t1))
        .await
        .expect("push over TLS");
    assert_eq!(served.revision, 1);
    assert_eq!(served.version, t1.version);
    assert!(served.skipped.is_empty(), "{:?}", served.skipped);

    let report = client
        .health_report(gw.admin)
        .await
        .expect("health report over TLS");
    assert_eq!(report.revision, Some(1));
    assert_eq!(report.version.as_deref(), Some(t1.version.as_str()));
    assert!(
        report.deployments.iter().any(|d| d.id == "default/a"),
        "{report:?}"
    );

    // The token is still checked over TLS.
    let dir = TempDir::new("admin-tls-wrong-token");
    let wrong = dir.path().join("token");
    std::fs::write(&wrong, "not-the-token\n").expect("write a token");
    let stranger = operator_client(Arc::new(TokenFile::new(wrong)), Some(&ca), None);
    match stranger.push(gw.admin, table_body(&table(2))).await {
        Err(PushError::Refused { status: 401, .. }) => {}
        other => panic!("expected a 401, got {other:?}"),
    }

    // The OpenAI API stays plain HTTP, serving the table pushed over TLS.
    let http = Client::new();
    let url = |path: &str| format!("http://{}{path}", gw.addr);
    assert_eq!(http.get(&url("/health/readiness")).await.status, 200);
    let chat = http
        .post(
            &url("/v1/chat/completions"),
            &modelgate_testkit::chat_body("chat"),
        )
        .await;
    assert_eq!(chat.status, 200, "{}", chat.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_signed_by_another_ca_is_refused() {
    let ca = Ca::new("the pods' CA");
    let other = Ca::new("some other CA");
    let gw = TlsGateway::start(&ca.issue(&["127.0.0.1"])).await;

    let message = unreachable(
        gw.client(Some(&other), None)
            .push(gw.admin, table_body(&table(1)))
            .await,
    );
    assert!(
        message.contains("certificate") && message.contains("UnknownIssuer"),
        "a TLS error: {message}"
    );
    // Nothing was pushed, and the failed handshake left the listener serving.
    assert_eq!(answers(&gw, &ca, None).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_fails() {
    let ca = Ca::new("modelgate test CA");
    let gw = TlsGateway::start(&ca.issue(&["127.0.0.1"])).await;

    // The operator without a CA bundle speaks plain HTTP.
    unreachable(
        gw.client(None, None)
            .push(gw.admin, table_body(&table(1)))
            .await,
    );

    // By hand: whatever comes back (a TLS alert, or nothing) is no HTTP answer.
    let admin = gw.admin;
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(admin).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"GET /v1/health-report HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    })
    .await
    .expect("the raw client");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // Still serving TLS.
    gw.client(Some(&ca), None)
        .push(gw.admin, table_body(&table(1)))
        .await
        .expect("push over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_server_name_is_checked_instead_of_the_ip() {
    let ca = Ca::new("modelgate test CA");
    // Valid for the DNS name only, not for 127.0.0.1.
    let gw = TlsGateway::start(&ca.issue(&[DNS_NAME])).await;

    let message = unreachable(gw.client(Some(&ca), None).health_report(gw.admin).await);
    assert!(
        message.contains("certificate") && message.contains("127.0.0.1"),
        "the pod's IP is not in its certificate: {message}"
    );

    let served = gw
        .client(Some(&ca), Some(DNS_NAME))
        .push(gw.admin, table_body(&table(1)))
        .await
        .expect("push checking the DNS name");
    assert_eq!(served.revision, 1);

    let message = unreachable(
        gw.client(Some(&ca), Some("elsewhere.modelgate.svc"))
            .health_report(gw.admin)
            .await,
    );
    assert!(message.contains("certificate"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_serve_new_connections_without_a_restart() {
    let (a, b, c) = (Ca::new("CA a"), Ca::new("CA b"), Ca::new("CA c"));
    let gw = TlsGateway::start(&a.issue(&["127.0.0.1"])).await;
    gw.client(Some(&a), None)
        .push(gw.admin, table_body(&table(1)))
        .await
        .expect("push over TLS");

    // cert-manager renews from another CA: new connections get the new pair; the table
    // pushed before is still served (no restart).
    let pair_b = b.issue(&["127.0.0.1"]);
    write_pair(&gw.files, &pair_b);
    assert_eq!(answers(&gw, &b, None).await, 1);
    let message = unreachable(gw.client(Some(&a), None).health_report(gw.admin).await);
    assert!(message.contains("UnknownIssuer"), "{message}");

    // Broken rotations leave the previous pair serving: a rotation half written (the new
    // certificate with the old key), a file that is not PEM, a missing file.
    let pair_c = c.issue(&["127.0.0.1"]);
    std::fs::write(&gw.files.cert, &pair_c.cert).expect("write the certificate");
    assert_eq!(answers(&gw, &b, None).await, 1);
    std::fs::write(&gw.files.cert, "not a certificate\n").expect("write");
    assert_eq!(answers(&gw, &b, None).await, 1);
    std::fs::remove_file(&gw.files.cert).expect("remove the certificate");
    assert_eq!(answers(&gw, &b, None).await, 1);

    // The rotation completed: the new pair serves.
    write_pair(&gw.files, &pair_c);
    assert_eq!(answers(&gw, &c, None).await, 1);
    unreachable(gw.client(Some(&b), None).health_report(gw.admin).await);
    let served = gw
        .client(Some(&c), None)
        .push(gw.admin, table_body(&table(2)))
        .await
        .expect("push after the rotation");
    assert_eq!(served.revision, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_holds_up_neither_others_nor_shutdown() {
    let ca = Ca::new("modelgate test CA");
    // A long drain: shutdown must not wait for it.
    let mut gw = TlsGateway::start_with(&ca.issue(&["127.0.0.1"]), Duration::from_secs(60)).await;

    // A client that connects and never says hello.
    let stalled = tokio::net::TcpStream::connect(gw.admin)
        .await
        .expect("connect");
    // Others are served meanwhile; this one keeps an idle keep-alive connection.
    let client = gw.client(Some(&ca), None);
    client
        .push(gw.admin, table_body(&table(1)))
        .await
        .expect("push over TLS");
    assert_eq!(
        client
            .health_report(gw.admin)
            .await
            .expect("health report")
            .revision,
        Some(1)
    );

    let started = Instant::now();
    let _ = gw.shutdown.send(true);
    let task = gw.task.take().expect("the serving task");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("shutdown waits for neither the stalled handshake nor idle connections")
        .expect("the serving task");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(stalled);
    unreachable(client.health_report(gw.admin).await);
}

/// Waits up to `within` for `child` to exit.
fn exit_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the data plane") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn start_binary(files: &TlsFiles, token: &Path, admin: SocketAddr, stderr: Stdio) -> Child {
    Command::new(binary("modelgate-dataplane", "modelgate-dataplane"))
        .arg("--listen")
        .arg(free_address().to_string())
        .arg("--admin-listen")
        .arg(admin.to_string())
        .arg("--metrics-listen")
        .arg(free_address().to_string())
        .arg("--admin-token-file")
        .arg(token)
        .arg("--admin-tls-cert")
        .arg(&files.cert)
        .env("MODELGATE_ADMIN_TLS_KEY", &files.key)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start the data plane")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_its_admin_api_over_tls() {
    let ca = Ca::new("modelgate test CA");
    let dir = TempDir::new("admin-tls-binary");
    let (files, token) = files_in(dir.path(), &ca.issue(&["127.0.0.1"]));

    // A key that is not one: the data plane does not start, and says which file.
    std::fs::write(&files.key, "not a key\n").expect("write");
    let mut child = start_binary(&files, &token, free_address(), Stdio::piped());
    let status = exit_within(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{stderr}");
    assert!(
        stderr.contains("admin TLS") && stderr.contains(&*files.key.to_string_lossy()),
        "{stderr}"
    );

    // The flags (the key given by its environment variable): TLS on the admin port.
    let pair = ca.issue(&["127.0.0.1"]);
    write_pair(&files, &pair);
    let admin = free_address();
    let mut child = start_binary(&files, &token, admin, Stdio::null());
    let client = operator_client(Arc::new(TokenFile::new(token)), Some(&ca), None);
    let served = modelgate_testkit::eventually(Duration::from_secs(20), || async {
        client.push(admin, table_body(&table(1))).await.is_ok()
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "no push over TLS to the binary");
}
