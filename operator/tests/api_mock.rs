//! The operator's Kubernetes-facing code against a mocked API server (no cluster): every
//! call's method, path, query and body is checked, and answered as an API server would,
//! one scenario per branch. The last scenarios run the whole controller against a
//! responder that answers by method and path, and a fake data plane on 127.0.0.1.
//!
//! Timing: tokio's paused clock needs its `test-util` feature, which the operator does not
//! enable, so the lease and writer scenarios run on real time with short durations and
//! assert lower bounds, and upper bounds only with wide margins, to stay stable on a
//! busy machine.

mod mock;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::events::{Recorder, Reporter};
use mock::{ApiServer, Call, base64, stored, unbase64};
use modelgate_operator::compile::Kind;
use modelgate_operator::controller::writer::{self, StatusPatch};
use modelgate_operator::controller::{self, Config, Context, Controller, FIELD_MANAGER};
use modelgate_operator::error::Error;
use modelgate_operator::leader::{self, LeaseConfig};
use modelgate_operator::push::{DataPlaneClient, TlsOptions, TokenFile};
use modelgate_operator::snapshot;
use modelgate_operator::telemetry::Metrics;
use serde_json::{Value, json};
use tokio::sync::watch;

const STATUS_PATH: &str = "/apis/modelgate.dev/v1alpha1/namespaces/team/modeldeployments/a/status";
const ALIAS_STATUS_PATH: &str =
    "/apis/modelgate.dev/v1alpha1/namespaces/team/modelgroupaliases/chat/status";
const SECRETS: &str = "/api/v1/namespaces/modelgate-system/secrets";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/modelgate-system/leases";
const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/modelgate-system/leases/modelgate-operator";
const DISCOVERY: &str = "/apis/modelgate.dev/v1alpha1";

/// Waits for a spawned task, failing the test when it does not finish in time.
async fn finish<T>(task: tokio::task::JoinHandle<T>, within: Duration) -> T {
    tokio::time::timeout(within, task)
        .await
        .expect("the task finishes in time")
        .expect("the task does not panic")
}

// =======================================================================================
// controller::writer::write
// =======================================================================================

fn deployment_patch(status: Value) -> StatusPatch {
    StatusPatch {
        kind: Kind::ModelDeployment,
        namespace: "team".to_owned(),
        name: "a".to_owned(),
        status,
        freshness_only: false,
    }
}

fn ready_status(ready: i32) -> Value {
    json!({
        "conditions": [{
            "type": "Ready",
            "status": if ready == 1 { "True" } else { "False" },
            "reason": if ready == 1 { "Served" } else { "Converging" },
            "message": format!("generation 1 is served by {ready}/1 data planes"),
            "lastTransitionTime": "2026-03-01T12:00:00Z",
            "observedGeneration": 1,
        }],
        "observedGeneration": 1,
        "dataplanes": {"ready": ready, "total": 1},
    })
}

/// What the API server answers a status apply: the object with the status.
fn answer_status_apply(call: Call) {
    let body = stored(call.body.clone(), "team", "a", "42");
    call.ok(&body);
}

#[tokio::test]
async fn a_deployment_status_is_server_side_applied_to_the_status_subresource() {
    let (client, mut server) = mock::client();
    let patch = deployment_patch(json!({
        "observedGeneration": 3,
        "health": {"latencyMs": 12},
        "conditions": [],
    }));
    let task = tokio::spawn(async move { writer::write(&client, &patch).await });

    let call = server.expect(Method::PATCH, STATUS_PATH).await;
    call.assert_forced_apply("modelgate-operator");
    assert_eq!(
        call.body,
        json!({
            "apiVersion": "modelgate.dev/v1alpha1",
            "kind": "ModelDeployment",
            "status": {
                "observedGeneration": 3,
                "conditions": [],
                "health": {"latencyMs": 12, "lastCheckTime": null, "lastError": null},
                "tableVersion": null,
            },
        }),
        "cleared optional fields are written as null"
    );
    answer_status_apply(call);

    finish(task, Duration::from_secs(5))
        .await
        .expect("the write succeeds");
}

#[tokio::test]
async fn an_alias_status_goes_to_the_alias_status_subresource() {
    let (client, mut server) = mock::client();
    let patch = StatusPatch {
        kind: Kind::ModelGroupAlias,
        namespace: "team".to_owned(),
        name: "chat".to_owned(),
        status: json!({"observedGeneration": 1, "targets": []}),
        freshness_only: false,
    };
    let task = tokio::spawn(async move { writer::write(&client, &patch).await });

    let call = server.expect(Method::PATCH, ALIAS_STATUS_PATH).await;
    call.assert_forced_apply("modelgate-operator");
    assert_eq!(call.body["kind"], "ModelGroupAlias");
    assert_eq!(call.body["apiVersion"], "modelgate.dev/v1alpha1");
    assert_eq!(call.body["status"]["targetSummary"], Value::Null);
    assert_eq!(call.body["status"]["tableVersion"], Value::Null);
    assert!(
        call.body["status"].get("health").is_none(),
        "no health field is added to an alias"
    );
    let body = stored(call.body.clone(), "team", "chat", "7");
    call.ok(&body);

    finish(task, Duration::from_secs(5))
        .await
        .expect("the write succeeds");
}

#[tokio::test]
async fn a_status_write_to_a_deleted_object_fails_with_not_found() {
    let (client, mut server) = mock::client();
    let patch = deployment_patch(ready_status(0));
    let task = tokio::spawn(async move { writer::write(&client, &patch).await });

    server.expect(Method::PATCH, STATUS_PATH).await.not_found();

    let err = finish(task, Duration::from_secs(5))
        .await
        .expect_err("a 404 is an error");
    match &err {
        Error::Kube {
            source: kube::Error::Api(s),
            ..
        } => assert_eq!(s.code, 404),
        other => panic!("expected a Kubernetes API error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("writing the status of ModelDeployment team/a: "),
        "{err}"
    );
}

#[tokio::test]
async fn a_status_write_the_server_fails_is_a_kube_error() {
    let (client, mut server) = mock::client();
    let patch = deployment_patch(ready_status(0));
    let task = tokio::spawn(async move { writer::write(&client, &patch).await });

    server
        .expect(Method::PATCH, STATUS_PATH)
        .await
        .internal_error();

    let err = finish(task, Duration::from_secs(5))
        .await
        .expect_err("a 500 is an error");
    assert!(
        matches!(&err, Error::Kube { source: kube::Error::Api(s), .. } if s.code == 500),
        "{err:?}"
    );
    assert_eq!(err.metric_label(), "kube");
}

// =======================================================================================
// controller::writer::run
// =======================================================================================

struct Writer {
    desired: watch::Sender<Arc<Vec<StatusPatch>>>,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
}

fn start_writer(client: kube::Client, refresh: Duration) -> Writer {
    let (desired, rx) = watch::channel(Arc::new(Vec::new()));
    let metrics = Arc::new(Metrics::default());
    let task = tokio::spawn(writer::run(client, metrics.clone(), refresh, rx));
    Writer {
        desired,
        metrics,
        task,
    }
}

impl Writer {
    fn send(&self, set: Vec<StatusPatch>) {
        self.desired.send_replace(Arc::new(set));
    }

    fn writes(&self, result: &str) -> u64 {
        let line = format!("modelgate_operator_status_writes_total{{result=\"{result}\"}} ");
        self.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&line).map(str::to_owned))
            .map_or(0, |n| n.parse().expect("a counter"))
    }
}

fn named(name: &str, status: Value) -> StatusPatch {
    StatusPatch {
        name: name.to_owned(),
        ..deployment_patch(status)
    }
}

fn status_path(name: &str) -> String {
    format!("/apis/modelgate.dev/v1alpha1/namespaces/team/modeldeployments/{name}/status")
}

#[tokio::test]
async fn the_writer_writes_each_status_once_and_again_only_when_it_changes() {
    let (client, mut server) = mock::client();
    let writer = start_writer(client, Duration::from_secs(60));
    let set = vec![named("a", ready_status(0)), named("b", ready_status(0))];

    writer.send(set.clone());
    let mut paths = BTreeSet::new();
    for _ in 0..2 {
        let call = server.next().await;
        assert_eq!(call.method, Method::PATCH);
        call.assert_forced_apply("modelgate-operator");
        assert_eq!(call.body["status"]["dataplanes"]["ready"], 0);
        paths.insert(call.path.clone());
        answer_status_apply(call);
    }
    assert_eq!(paths, BTreeSet::from([status_path("a"), status_path("b")]));

    // The same set again (a new value of the channel): nothing to write.
    writer.send(set.clone());
    server.expect_no_call(Duration::from_millis(300)).await;

    // One status changes: only that one is written.
    writer.send(vec![
        named("a", ready_status(1)),
        named("b", ready_status(0)),
    ]);
    let call = server.expect(Method::PATCH, &status_path("a")).await;
    assert_eq!(call.body["status"]["dataplanes"]["ready"], 1);
    answer_status_apply(call);
    server.expect_no_call(Duration::from_millis(300)).await;
    eventually(Duration::from_secs(5), "the writes are counted", || {
        writer.writes("ok") == 3
    })
    .await;

    // The controller goes away: the writer stops.
    drop(writer.desired);
    finish(writer.task, Duration::from_secs(5)).await;
}

fn with_latency(latency_ms: i64) -> Value {
    let mut status = ready_status(1);
    status["health"] = json!({"latencyMs": latency_ms, "lastCheckTime": "2026-03-01T12:00:00Z"});
    status
}

#[tokio::test]
async fn a_freshness_only_change_is_written_once_the_refresh_period_has_passed() {
    let refresh = Duration::from_millis(700);
    let (client, mut server) = mock::client();
    let writer = start_writer(client, refresh);

    writer.send(vec![named("a", with_latency(10))]);
    let call = server.expect(Method::PATCH, STATUS_PATH).await;
    answer_status_apply(call);
    let written_at = Instant::now();

    // Only the latency moved, right after the write: not worth a write yet.
    let fresher = StatusPatch {
        freshness_only: true,
        ..named("a", with_latency(11))
    };
    writer.send(vec![fresher.clone()]);
    server.expect_no_call(Duration::from_millis(200)).await;

    // The next set after the refresh period carries it.
    tokio::time::sleep(refresh.saturating_sub(written_at.elapsed()) + Duration::from_millis(300))
        .await;
    writer.send(vec![fresher]);
    let call = server.expect(Method::PATCH, STATUS_PATH).await;
    assert_eq!(call.body["status"]["health"]["latencyMs"], 11);
    answer_status_apply(call);
    server.expect_no_call(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_real_change_is_written_at_once_even_within_the_refresh_period() {
    let (client, mut server) = mock::client();
    let writer = start_writer(client, Duration::from_secs(60));

    writer.send(vec![named("a", with_latency(10))]);
    answer_status_apply(server.expect(Method::PATCH, STATUS_PATH).await);

    // Within the refresh period, a change beyond freshness is written at once.
    writer.send(vec![named("a", ready_status(0))]);
    let call = server.expect(Method::PATCH, STATUS_PATH).await;
    assert_eq!(call.body["status"]["dataplanes"]["ready"], 0);
    assert_eq!(
        call.body["status"]["health"],
        Value::Null,
        "the health the status no longer has is cleared"
    );
    answer_status_apply(call);
}

#[tokio::test]
async fn a_failed_status_write_is_retried_two_seconds_later() {
    let (client, mut server) = mock::client();
    let writer = start_writer(client, Duration::from_secs(60));

    writer.send(vec![named("a", ready_status(1))]);
    server
        .expect(Method::PATCH, STATUS_PATH)
        .await
        .internal_error();
    let failed_at = Instant::now();

    let call = server.expect(Method::PATCH, STATUS_PATH).await;
    assert!(
        failed_at.elapsed() >= Duration::from_millis(1900),
        "retried after {:?}",
        failed_at.elapsed()
    );
    assert_eq!(call.body["status"]["dataplanes"]["ready"], 1);
    answer_status_apply(call);
    eventually(Duration::from_secs(5), "the write is counted", || {
        writer.writes("ok") == 1
    })
    .await;
    assert_eq!(writer.writes("kube"), 1);

    // Written: no more retries.
    server.expect_no_call(Duration::from_millis(2500)).await;
}

#[tokio::test]
async fn a_newer_status_replaces_a_pending_retry_at_once() {
    let (client, mut server) = mock::client();
    let writer = start_writer(client, Duration::from_secs(60));

    writer.send(vec![named("a", ready_status(0))]);
    server
        .expect(Method::PATCH, STATUS_PATH)
        .await
        .internal_error();
    let failed_at = Instant::now();

    writer.send(vec![named("a", ready_status(1))]);
    let call = server.expect(Method::PATCH, STATUS_PATH).await;
    assert!(
        failed_at.elapsed() < Duration::from_millis(1900),
        "a new desired set does not wait for the retry delay"
    );
    assert_eq!(
        call.body["status"]["dataplanes"]["ready"], 1,
        "the latest status, not the failed one"
    );
    answer_status_apply(call);
    server.expect_no_call(Duration::from_millis(2500)).await;
}

#[tokio::test]
async fn a_status_whose_object_is_gone_is_not_retried() {
    let (client, mut server) = mock::client();
    let writer = start_writer(client, Duration::from_secs(60));

    writer.send(vec![named("a", ready_status(1))]);
    server.expect(Method::PATCH, STATUS_PATH).await.not_found();

    server.expect_no_call(Duration::from_millis(2500)).await;

    // Recreated under the same name: the same status is written again.
    writer.send(vec![named("a", ready_status(1))]);
    answer_status_apply(server.expect(Method::PATCH, STATUS_PATH).await);
}

// =======================================================================================
// snapshot::write and snapshot::read
// =======================================================================================

const BASE: &str = "modelgate-routing-table";

fn secret_path(name: &str) -> String {
    format!("{SECRETS}/{name}")
}

fn secrets_api(client: kube::Client) -> Api<Secret> {
    Api::namespaced(client, "modelgate-system")
}

/// Checks a server-side apply of snapshot Secret `name` and answers it.
async fn expect_snapshot_apply(server: &mut ApiServer, name: &str, expected: &Secret) -> Value {
    let call = server.expect(Method::PATCH, &secret_path(name)).await;
    call.assert_forced_apply(FIELD_MANAGER);
    let body = call.body.clone();
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["kind"], "Secret");
    assert_eq!(body["type"], "Opaque");
    assert_eq!(body["metadata"]["name"], name);
    assert_eq!(body["metadata"]["namespace"], "modelgate-system");
    assert_eq!(body["metadata"]["labels"][snapshot::SNAPSHOT_LABEL], "true");
    let sent: Secret = serde_json::from_value(body.clone()).expect("the body is a Secret");
    assert_eq!(sent.data, expected.data, "{name} carries its part");
    let answer = stored(body.clone(), "modelgate-system", name, "9");
    call.ok(&answer);
    body
}

#[tokio::test]
async fn a_three_part_snapshot_is_written_last_part_first_manifest_last_then_stale_parts_go() {
    let gz: Vec<u8> = (0..snapshot::PART_BYTES * 2 + 10)
        .map(|i| (i % 251) as u8)
        .collect();
    let secrets = snapshot::secrets(BASE, "modelgate-system", 7, "v7", &gz).expect("3 parts fit");
    assert_eq!(secrets.len(), 3);
    let (client, mut server) = mock::client();
    let to_write = secrets.clone();
    let task = tokio::spawn(async move {
        snapshot::write(&secrets_api(client), FIELD_MANAGER, &to_write).await
    });

    expect_snapshot_apply(&mut server, "modelgate-routing-table-2", &secrets[2]).await;
    expect_snapshot_apply(&mut server, "modelgate-routing-table-1", &secrets[1]).await;
    let manifest = expect_snapshot_apply(&mut server, BASE, &secrets[0]).await;
    assert_eq!(
        unbase64(manifest["data"]["parts"].as_str().expect("parts")),
        b"3"
    );
    assert_eq!(
        unbase64(manifest["data"]["revision"].as_str().expect("revision")),
        b"7"
    );
    assert_eq!(
        unbase64(manifest["data"]["version"].as_str().expect("version")),
        b"v7"
    );

    // A previous, larger snapshot left parts 3 and 4; part 5 never existed.
    for stale in ["modelgate-routing-table-3", "modelgate-routing-table-4"] {
        let call = server.expect(Method::DELETE, &secret_path(stale)).await;
        let gone = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": stale, "namespace": "modelgate-system"},
        });
        call.ok(&gone);
    }
    server
        .expect(Method::DELETE, &secret_path("modelgate-routing-table-5"))
        .await
        .not_found();

    finish(task, Duration::from_secs(10))
        .await
        .expect("the snapshot is written");
    server.expect_no_call(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_failed_part_stops_the_snapshot_before_its_manifest() {
    let gz = vec![1u8; snapshot::PART_BYTES + 1];
    let secrets = snapshot::secrets(BASE, "modelgate-system", 2, "v2", &gz).expect("2 parts");
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move {
        snapshot::write(&secrets_api(client), FIELD_MANAGER, &secrets).await
    });

    server
        .expect(Method::PATCH, &secret_path("modelgate-routing-table-1"))
        .await
        .internal_error();

    let err = finish(task, Duration::from_secs(5))
        .await
        .expect_err("the snapshot is not written");
    assert!(
        err.to_string()
            .contains("writing Secret modelgate-routing-table-1"),
        "{err}"
    );
    server.expect_no_call(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_part_that_cannot_be_deleted_does_not_fail_the_snapshot() {
    let secrets = snapshot::secrets(BASE, "modelgate-system", 1, "v1", &snapshot::gzip(b"{}"))
        .expect("1 part");
    let (client, mut server) = mock::client();
    let expected = secrets[0].clone();
    let task = tokio::spawn(async move {
        snapshot::write(&secrets_api(client), FIELD_MANAGER, &secrets).await
    });

    expect_snapshot_apply(&mut server, BASE, &expected).await;
    server
        .expect(Method::DELETE, &secret_path("modelgate-routing-table-1"))
        .await
        .fail(403, "Forbidden", "secrets is forbidden");

    finish(task, Duration::from_secs(5))
        .await
        .expect("the manifest is what counts");
    server.expect_no_call(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn reading_a_missing_snapshot_gives_none() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { snapshot::read(&secrets_api(client), BASE).await });

    server
        .expect(Method::GET, &secret_path(BASE))
        .await
        .not_found();

    let recorded = finish(task, Duration::from_secs(5))
        .await
        .expect("a missing snapshot is no error");
    assert_eq!(recorded, None);
}

#[tokio::test]
async fn reading_a_snapshot_gives_its_revision_and_version() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { snapshot::read(&secrets_api(client), BASE).await });

    let call = server.expect(Method::GET, &secret_path(BASE)).await;
    call.ok(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": BASE, "namespace": "modelgate-system", "resourceVersion": "3"},
        "data": {
            "parts": base64(b"1"),
            "revision": base64(b"41\n"),
            "version": base64(b"sha256:abc"),
            "table.json.gz.000": base64(b"..."),
        },
    }));

    let recorded = finish(task, Duration::from_secs(5))
        .await
        .expect("the snapshot is read");
    assert_eq!(recorded, Some((41, "sha256:abc".to_owned())));
}

#[tokio::test]
async fn a_secret_without_a_revision_is_no_snapshot() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { snapshot::read(&secrets_api(client), BASE).await });

    let call = server.expect(Method::GET, &secret_path(BASE)).await;
    call.ok(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": BASE, "namespace": "modelgate-system"},
        "data": {"revision": base64(b"not a number"), "version": base64(b"v")},
    }));

    let recorded = finish(task, Duration::from_secs(5))
        .await
        .expect("an unreadable snapshot is no error");
    assert_eq!(recorded, None);
}

#[tokio::test]
async fn a_snapshot_read_the_server_fails_is_an_error() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { snapshot::read(&secrets_api(client), BASE).await });

    server
        .expect(Method::GET, &secret_path(BASE))
        .await
        .internal_error();

    let err = finish(task, Duration::from_secs(5))
        .await
        .expect_err("the caller retries");
    assert!(
        err.to_string()
            .starts_with("reading Secret modelgate-routing-table: "),
        "{err}"
    );
}

// =======================================================================================
// leader
// =======================================================================================

const LEASE_DURATION: Duration = Duration::from_millis(300);

fn lease_config() -> LeaseConfig {
    LeaseConfig {
        name: "modelgate-operator".to_owned(),
        identity: "me".to_owned(),
        duration: LEASE_DURATION,
    }
}

fn leases(client: kube::Client) -> Api<Lease> {
    Api::namespaced(client, "modelgate-system")
}

/// A Lease as the API server returns it.
fn lease(holder: Option<&str>, resource_version: &str, renewed: &str, transitions: i32) -> Value {
    let mut spec = json!({
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-03-01T11:00:00.000000Z",
        "renewTime": renewed,
        "leaseTransitions": transitions,
    });
    if let Some(h) = holder {
        spec["holderIdentity"] = json!(h);
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "modelgate-operator",
            "namespace": "modelgate-system",
            "resourceVersion": resource_version,
        },
        "spec": spec,
    })
}

/// Checks a PUT taking or renewing the lease as `me` from `resource_version`.
fn assert_written_by_me(call: &Call, resource_version: &str) {
    assert_eq!(call.method, Method::PUT);
    assert_eq!(call.path, LEASE);
    assert_eq!(
        call.body["metadata"]["resourceVersion"], resource_version,
        "the write carries the version it read"
    );
    assert_eq!(call.body["spec"]["holderIdentity"], "me");
    assert!(call.body["spec"]["renewTime"].is_string());
}

/// Answers a write of the lease: the body stored under a new version.
fn accept_lease_write(call: Call, resource_version: &str) {
    let mut body = call.body.clone();
    body["metadata"]["resourceVersion"] = json!(resource_version);
    call.ok(&body);
}

#[tokio::test]
async fn a_missing_lease_is_created_with_this_replica_as_holder() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(leader::acquire(leases(client), lease_config()));

    server.expect(Method::GET, LEASE).await.not_found();
    let call = server.expect(Method::POST, LEASES).await;
    assert_eq!(call.body["metadata"]["name"], "modelgate-operator");
    assert_eq!(call.body["spec"]["holderIdentity"], "me");
    assert_eq!(call.body["spec"]["leaseTransitions"], 0);
    assert_eq!(
        call.body["spec"]["leaseDurationSeconds"], 1,
        "at least a second"
    );
    assert!(call.body["spec"]["acquireTime"].is_string());
    assert!(call.body["spec"]["renewTime"].is_string());
    assert!(call.body["metadata"].get("resourceVersion").is_none());
    let mut created = stored(
        call.body.clone(),
        "modelgate-system",
        "modelgate-operator",
        "1",
    );
    created["kind"] = json!("Lease");
    call.reply(201, &created);

    finish(task, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_lease_another_replica_keeps_renewing_is_left_alone() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(leader::acquire(leases(client), lease_config()));

    let started = Instant::now();
    let mut version = 10;
    // Well past a lease duration, the holder renewing each time.
    while started.elapsed() < LEASE_DURATION * 2 {
        let call = server.expect(Method::GET, LEASE).await;
        version += 1;
        let renewed = format!("2026-03-01T12:00:{:02}.000000Z", version % 60);
        call.ok(&lease(Some("other"), &version.to_string(), &renewed, 2));
    }
    let call = server.expect(Method::GET, LEASE).await;
    call.ok(&lease(
        Some("other"),
        "99",
        "2026-03-01T12:01:00.000000Z",
        2,
    ));

    task.abort();
}

#[tokio::test]
async fn a_lease_unchanged_for_a_whole_duration_is_taken_over() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(leader::acquire(leases(client), lease_config()));
    let stale = lease(Some("other"), "5", "2026-03-01T12:00:00.000000Z", 3);

    let first_read = Instant::now();
    let mut reads = 0;
    let call = loop {
        let call = server.next().await;
        if call.method != Method::GET {
            break call;
        }
        assert_eq!(call.path, LEASE);
        reads += 1;
        call.ok(&stale);
    };

    assert!(
        reads >= 2,
        "the record is watched before it is judged stale"
    );
    assert!(
        first_read.elapsed() >= LEASE_DURATION,
        "taken over after {:?}",
        first_read.elapsed()
    );
    assert_written_by_me(&call, "5");
    assert_eq!(call.body["spec"]["leaseTransitions"], 4);
    assert_ne!(
        call.body["spec"]["acquireTime"], stale["spec"]["acquireTime"],
        "a new acquire time"
    );
    accept_lease_write(call, "6");

    finish(task, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn losing_the_race_for_a_stale_lease_goes_back_to_waiting() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(leader::acquire(leases(client), lease_config()));
    let stale = lease(Some("other"), "5", "2026-03-01T12:00:00.000000Z", 3);

    let take_over = loop {
        let call = server.next().await;
        if call.method != Method::GET {
            break call;
        }
        call.ok(&stale);
    };
    assert_written_by_me(&take_over, "5");
    take_over.conflict();

    // Another candidate won; the record it wrote is new, so the wait starts over.
    let watching_again = Instant::now();
    let won_by_other = lease(Some("third"), "6", "2026-03-01T12:00:05.000000Z", 4);
    let call = server.expect(Method::GET, LEASE).await;
    call.ok(&won_by_other);
    let call = loop {
        let call = server.next().await;
        if call.method != Method::GET {
            break call;
        }
        call.ok(&won_by_other);
    };
    assert!(
        watching_again.elapsed() >= LEASE_DURATION,
        "the new holder gets a whole duration ({:?})",
        watching_again.elapsed()
    );
    assert_written_by_me(&call, "6");
    assert_eq!(call.body["spec"]["leaseTransitions"], 5);
    accept_lease_write(call, "7");

    finish(task, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(leader::acquire(leases(client), lease_config()));

    let call = server.expect(Method::GET, LEASE).await;
    call.ok(&lease(Some(""), "8", "2026-03-01T12:00:00.000000Z", 1));
    let call = server.expect(Method::PUT, LEASE).await;
    assert_written_by_me(&call, "8");
    assert_eq!(call.body["spec"]["leaseTransitions"], 2);
    accept_lease_write(call, "9");

    finish(task, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_lease_already_held_by_this_identity_is_renewed_without_a_transition() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(leader::acquire(leases(client), lease_config()));

    let call = server.expect(Method::GET, LEASE).await;
    call.ok(&lease(Some("me"), "8", "2026-03-01T12:00:00.000000Z", 1));
    let call = server.expect(Method::PUT, LEASE).await;
    assert_written_by_me(&call, "8");
    assert_eq!(call.body["spec"]["leaseTransitions"], 1);
    assert_eq!(
        call.body["spec"]["acquireTime"], "2026-03-01T11:00:00.000000Z",
        "the acquire time stays"
    );
    accept_lease_write(call, "9");

    finish(task, Duration::from_secs(5)).await;
}

/// Leads through a free lease; returns the version of the lease as taken.
async fn take_free_lease(server: &mut ApiServer) -> &'static str {
    let call = server.expect(Method::GET, LEASE).await;
    call.ok(&lease(None, "1", "2026-03-01T12:00:00.000000Z", 0));
    let call = server.expect(Method::PUT, LEASE).await;
    accept_lease_write(call, "2");
    "2"
}

#[tokio::test]
async fn a_leader_renews_every_third_of_the_duration_until_another_replica_takes_the_lease() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move {
        let mut leader = leader::acquire(leases(client), lease_config()).await;
        leader.hold().await
    });
    let mut version = take_free_lease(&mut server).await.to_owned();
    let mut last = Instant::now();

    for next in ["3", "4", "5"] {
        let call = server.expect(Method::PUT, LEASE).await;
        assert!(
            last.elapsed() >= LEASE_DURATION / 3 - Duration::from_millis(5),
            "renewed after {:?}",
            last.elapsed()
        );
        assert_written_by_me(&call, &version);
        accept_lease_write(call, next);
        version = next.to_owned();
        last = Instant::now();
    }

    // Someone else wrote the lease: the renewal conflicts and a read shows the new holder.
    server.expect(Method::PUT, LEASE).await.conflict();
    let call = server.expect(Method::GET, LEASE).await;
    call.ok(&lease(Some("other"), "7", "2026-03-01T12:00:09.000000Z", 2));

    let err = finish(task, Duration::from_secs(5)).await;
    assert!(matches!(err, Error::LeaseLost(_)), "{err:?}");
    assert!(
        err.to_string().contains("taken by another replica"),
        "{err}"
    );
}

#[tokio::test]
async fn a_conflicting_renewal_is_forgiven_when_the_lease_is_still_ours() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move {
        let mut leader = leader::acquire(leases(client), lease_config()).await;
        leader.hold().await
    });
    take_free_lease(&mut server).await;

    server.expect(Method::PUT, LEASE).await.conflict();
    let ours = lease(Some("me"), "3", "2026-03-01T12:00:01.000000Z", 1);
    server.expect(Method::GET, LEASE).await.ok(&ours);

    // The next renewal starts from the version just read.
    let call = server.expect(Method::PUT, LEASE).await;
    assert_written_by_me(&call, "3");
    accept_lease_write(call, "4");
    assert!(!task.is_finished(), "still leading");
    task.abort();
}

#[tokio::test]
async fn a_lease_gone_missing_is_lost() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move {
        let mut leader = leader::acquire(leases(client), lease_config()).await;
        leader.hold().await
    });
    take_free_lease(&mut server).await;

    server.expect(Method::PUT, LEASE).await.not_found();
    server.expect(Method::GET, LEASE).await.not_found();

    let err = finish(task, Duration::from_secs(5)).await;
    assert!(matches!(err, Error::LeaseLost(_)), "{err:?}");
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down_at_its_renew_deadline() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move {
        let mut leader = leader::acquire(leases(client), lease_config()).await;
        leader.hold().await
    });
    take_free_lease(&mut server).await;
    let renewed = Instant::now();

    let mut failures = 0;
    let mut task = task;
    let outcome = loop {
        tokio::select! {
            biased;
            done = &mut task => break Some(done),
            request = server.0.next_request() => match request {
                Some((request, respond)) => {
                    let call = Call::read(request, respond).await;
                    assert_eq!((&call.method, call.path.as_str()), (&Method::PUT, LEASE));
                    failures += 1;
                    assert!(failures < 50, "still leading after {failures} failed renewals");
                    call.internal_error();
                }
                None => break None,
            },
        }
    };
    let err = match outcome {
        Some(done) => done.expect("the leader does not panic"),
        None => finish(task, Duration::from_secs(5)).await,
    };

    assert!(failures >= 1, "{failures} failed renewals");
    // A leader steps down at its renew deadline (two thirds of the lease duration), before
    // any standby may take the lease over.
    assert!(
        renewed.elapsed() >= LEASE_DURATION * 2 / 3 && renewed.elapsed() < LEASE_DURATION,
        "stepped down after {:?}",
        renewed.elapsed()
    );
    assert!(
        matches!(&err, Error::LeaseLost(m) if m.contains("not renewed")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_leader_whose_renewal_hangs_steps_down_within_the_lease_duration() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move {
        let mut leader = leader::acquire(leases(client), lease_config()).await;
        leader.hold().await
    });
    take_free_lease(&mut server).await;

    // The API server accepts the renewal and never answers it.
    let hung = server.expect(Method::PUT, LEASE).await;
    let _unanswered = hung.hold();

    // A standby takes the lease over one duration after the last renewal it saw; the
    // leader must have stepped down by then (with some slack for this machine).
    let err = finish(task, LEASE_DURATION * 4).await;
    assert!(matches!(err, Error::LeaseLost(_)), "{err:?}");
}

#[tokio::test]
async fn releasing_the_lease_clears_the_holder() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move {
        let leader = leader::acquire(leases(client), lease_config()).await;
        leader.release().await;
    });
    let version = take_free_lease(&mut server).await;

    let call = server.expect(Method::PUT, LEASE).await;
    assert_eq!(call.body["metadata"]["resourceVersion"], version);
    assert!(
        call.body["spec"].get("holderIdentity").is_none(),
        "no holder: {}",
        call.body["spec"]
    );
    assert_eq!(call.body["spec"]["leaseDurationSeconds"], 1);
    accept_lease_write(call, "3");

    finish(task, Duration::from_secs(5)).await;
}

// =======================================================================================
// controller::check_resources
// =======================================================================================

fn api_resources(kinds: &[(&str, &str)]) -> Value {
    let mut resources = Vec::new();
    for (kind, plural) in kinds {
        resources.push(json!({
            "name": plural, "singularName": kind.to_lowercase(), "namespaced": true, "kind": kind,
            "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
        }));
        resources.push(json!({
            "name": format!("{plural}/status"), "singularName": "", "namespaced": true, "kind": kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "modelgate.dev/v1alpha1",
        "resources": resources,
    })
}

#[tokio::test]
async fn both_resources_served_pass_the_check() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { controller::check_resources(&client).await });
    let both = api_resources(&[
        ("ModelDeployment", "modeldeployments"),
        ("ModelGroupAlias", "modelgroupaliases"),
    ]);

    // One discovery per kind.
    server.expect(Method::GET, DISCOVERY).await.ok(&both);
    server.expect(Method::GET, DISCOVERY).await.ok(&both);

    finish(task, Duration::from_secs(5))
        .await
        .expect("the CRDs are installed");
}

#[tokio::test]
async fn an_unserved_group_means_the_crds_are_missing_with_a_hint() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { controller::check_resources(&client).await });

    server.expect(Method::GET, DISCOVERY).await.fail(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );

    let err = finish(task, Duration::from_secs(5))
        .await
        .expect_err("no CRDs");
    assert!(matches!(err, Error::CrdsMissing(_)), "{err:?}");
    assert!(
        err.to_string().contains("kubectl apply -f crds/yaml/"),
        "{err}"
    );
    assert!(err.to_string().contains("ModelDeployment"), "{err}");
}

#[tokio::test]
async fn a_plain_text_404_also_means_the_crds_are_missing() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { controller::check_resources(&client).await });

    server
        .expect(Method::GET, DISCOVERY)
        .await
        .reply_text(404, "404 page not found");

    let err = finish(task, Duration::from_secs(5))
        .await
        .expect_err("no CRDs");
    assert!(matches!(err, Error::CrdsMissing(_)), "{err:?}");
}

#[tokio::test]
async fn a_group_serving_only_one_kind_means_a_crd_is_missing() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { controller::check_resources(&client).await });
    let only_deployments = api_resources(&[("ModelDeployment", "modeldeployments")]);

    server
        .expect(Method::GET, DISCOVERY)
        .await
        .ok(&only_deployments);
    server
        .expect(Method::GET, DISCOVERY)
        .await
        .ok(&only_deployments);

    let err = finish(task, Duration::from_secs(5))
        .await
        .expect_err("ModelGroupAlias is missing");
    assert!(matches!(err, Error::CrdsMissing(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("ModelGroupAlias"), "{text}");
    assert!(text.contains("kubectl apply -f crds/yaml/"), "{text}");
}

#[tokio::test]
async fn an_api_server_failing_discovery_is_not_mistaken_for_missing_crds() {
    let (client, mut server) = mock::client();
    let task = tokio::spawn(async move { controller::check_resources(&client).await });

    server.expect(Method::GET, DISCOVERY).await.internal_error();

    let err = finish(task, Duration::from_secs(5))
        .await
        .expect_err("the caller retries");
    assert!(matches!(err, Error::Kube { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("discovering the modelgate.dev API"),
        "{err}"
    );
}

// =======================================================================================
// The whole controller
// =======================================================================================

/// A call the responder answered, as recorded.
#[derive(Clone, Debug)]
struct Recorded {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    body: Value,
}

type Journal = Arc<Mutex<Vec<Recorded>>>;

/// What the mocked cluster holds.
#[derive(Clone, Default)]
struct Cluster {
    deployments: Vec<Value>,
    aliases: Vec<Value>,
    secrets: Vec<Value>,
    configmaps: Vec<Value>,
    pods: Vec<Value>,
    /// The snapshot manifest Secret, if a previous leader wrote one.
    snapshot: Option<Value>,
}

impl Cluster {
    /// `(kind, apiVersion, objects)` of a resource, by plural.
    fn resource(&self, plural: &str) -> Option<(&'static str, &'static str, &[Value])> {
        Some(match plural {
            "modeldeployments" => (
                "ModelDeployment",
                "modelgate.dev/v1alpha1",
                &self.deployments,
            ),
            "modelgroupaliases" => ("ModelGroupAlias", "modelgate.dev/v1alpha1", &self.aliases),
            "secrets" => ("Secret", "v1", &self.secrets),
            "configmaps" => ("ConfigMap", "v1", &self.configmaps),
            "pods" => ("Pod", "v1", &self.pods),
            _ => return None,
        })
    }
}

/// A path split into namespace, resource and name:
/// `/api/v1[/namespaces/<ns>]/<plural>[/<name>[/<sub>]]`, same under `/apis/<g>/<v>`.
#[derive(Debug, PartialEq)]
struct Route {
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
}

fn route(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..)?,
        Some(&"apis") => segments.get(3..)?,
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    Some(Route {
        namespace,
        plural: (*rest.first()?).to_owned(),
        name: rest.get(1).map(|n| (*n).to_owned()),
    })
}

/// Answers the controller's calls by method and path, and records every call. Lists
/// answer the cluster's objects (of the namespace asked); watches are held open without
/// events; writes are accepted and echoed.
fn spawn_responder(
    mut server: ApiServer,
    cluster: Cluster,
    journal: Journal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut open_watches = Vec::new();
        let mut version = 200;
        while let Some((request, respond)) = server.0.next_request().await {
            let call = Call::read(request, respond).await;
            journal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Recorded {
                    method: call.method.clone(),
                    path: call.path.clone(),
                    query: call.query.clone(),
                    body: call.body.clone(),
                });
            version += 1;
            let Some(at) = route(&call.path) else {
                call.not_found();
                continue;
            };
            match (call.method.clone(), at.name.as_deref()) {
                (Method::GET, None) if call.param("watch") == Some("true") => {
                    open_watches.push(call.hold());
                }
                (Method::GET, None) => match cluster.resource(&at.plural) {
                    Some((kind, api_version, objects)) => {
                        let items: Vec<Value> = objects
                            .iter()
                            .filter(|o| {
                                at.namespace.is_none()
                                    || o["metadata"]["namespace"].as_str()
                                        == at.namespace.as_deref()
                            })
                            .cloned()
                            .collect();
                        call.ok(&json!({
                            "apiVersion": api_version,
                            "kind": format!("{kind}List"),
                            "metadata": {"resourceVersion": "100"},
                            "items": items,
                        }));
                    }
                    None => call.not_found(),
                },
                (Method::GET, Some(BASE)) if at.plural == "secrets" => match &cluster.snapshot {
                    Some(secret) => call.ok(secret),
                    None => call.not_found(),
                },
                (Method::PATCH | Method::PUT, Some(name)) => {
                    let name = name.to_owned();
                    let namespace = at.namespace.clone().unwrap_or_default();
                    let body = stored(call.body.clone(), &namespace, &name, &version.to_string());
                    call.ok(&body);
                }
                (Method::POST, None) => {
                    let body = call.body.clone();
                    call.reply(201, &body);
                }
                _ => call.not_found(),
            }
        }
        drop(open_watches);
    })
}

/// What the fake data plane was sent.
#[derive(Default)]
struct DataPlaneState {
    /// Every pushed table (gunzipped JSON) with the `Authorization` it came with.
    pushes: Vec<(Option<String>, Value)>,
    /// Pushes refused (when `refuse_pushes` is set).
    refused: usize,
    /// Refuse every push with this status (health reports still answer).
    refuse_pushes: Option<u16>,
    /// The message of a refusal (a default one when empty).
    refusal: String,
}

/// A data plane's admin API on 127.0.0.1: accepts every table, reports every deployment
/// of the table it serves as healthy.
async fn spawn_data_plane(
    state: Arc<Mutex<DataPlaneState>>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(data_plane_answer(req, &state).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

fn json_response(code: u16, v: &Value) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("a valid response")
}

fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut text)?;
    Ok(text)
}

async fn data_plane_answer(
    req: http::Request<hyper::body::Incoming>,
    state: &Mutex<DataPlaneState>,
) -> http::Response<Full<Bytes>> {
    let refuse = |message: String| json_response(400, &json!({"error": {"message": message}}));
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let route = (req.method().clone(), req.uri().path().to_owned());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refuse(e.to_string()),
    };
    match (route.0, route.1.as_str()) {
        (Method::PUT, "/v1/routing-table") => {
            let text = match gunzip(&body) {
                Ok(t) => t,
                Err(e) => return refuse(format!("not gzip: {e}")),
            };
            let table: Value = match serde_json::from_slice(&text) {
                Ok(t) => t,
                Err(e) => return refuse(e.to_string()),
            };
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(code) = state.refuse_pushes {
                state.refused += 1;
                let message = if state.refusal.is_empty() {
                    "the table needs a newer data plane"
                } else {
                    state.refusal.as_str()
                };
                return json_response(code, &json!({"error": {"message": message}}));
            }
            let answer = json!({
                "revision": table["revision"],
                "version": table["version"],
                "changed": true,
                "skipped": [],
            });
            state.pushes.push((auth, table));
            json_response(200, &answer)
        }
        (Method::GET, "/v1/health-report") => {
            let state = state.lock().unwrap_or_else(|p| p.into_inner());
            let Some((_, table)) = state.pushes.last() else {
                return json_response(200, &json!({"deployments": []}));
            };
            let deployments: Vec<Value> = table["deployments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    json!({
                        "id": d["id"],
                        "healthy": true,
                        "latencyMs": 3,
                        "lastCheckMs": 1_772_366_400_000u64,
                        "consecutiveFailures": 0,
                    })
                })
                .collect();
            let report = json!({
                "deployments": deployments,
                "revision": table["revision"],
                "version": table["version"],
            });
            json_response(200, &report)
        }
        _ => json_response(404, &json!({"error": {"message": "no such route"}})),
    }
}

fn model_deployment(name: &str, secret: &str) -> Value {
    json!({
        "apiVersion": "modelgate.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": name, "namespace": "team", "uid": format!("uid-{name}"),
            "generation": 1, "resourceVersion": "10",
            "creationTimestamp": "2026-03-01T11:00:00Z",
        },
        "spec": {
            "model": format!("model-{name}"),
            "upstream": {
                "provider": "openai-compatible",
                "apiBase": "http://127.0.0.1:9",
                "credentials": {"secretKeyRef": {"name": secret, "key": "apiKey"}},
            },
        },
    })
}

/// Deployment `good` (its Secret exists), `bad` (its Secret does not), alias `chat` of
/// `good`'s model, and one data-plane pod in namespace `apps` whose admin API is `admin`.
fn cluster(admin: SocketAddr) -> Cluster {
    Cluster {
        deployments: vec![
            model_deployment("good", "upstream-key"),
            model_deployment("bad", "missing-key"),
        ],
        aliases: vec![json!({
            "apiVersion": "modelgate.dev/v1alpha1",
            "kind": "ModelGroupAlias",
            "metadata": {
                "name": "chat", "namespace": "team", "uid": "uid-chat",
                "generation": 1, "resourceVersion": "11",
            },
            "spec": {"alias": "chat", "targets": [{"model": "model-good"}]},
        })],
        secrets: vec![json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "upstream-key", "namespace": "team", "uid": "uid-key", "resourceVersion": "12"},
            "data": {"apiKey": base64(b"sk-test")},
        })],
        configmaps: Vec::new(),
        pods: vec![json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "gateway-0", "namespace": "apps", "uid": "uid-gw",
                "resourceVersion": "13",
                "labels": {"modelgate.dev/dataplane": "true"},
            },
            "spec": {"containers": [{
                "name": "gateway",
                "ports": [{"name": "modelgate-admin", "containerPort": admin.port()}],
            }]},
            "status": {"phase": "Running", "podIP": admin.ip().to_string()},
        })],
        snapshot: None,
    }
}

fn config(token: PathBuf) -> Config {
    Config {
        namespace: "modelgate-system".to_owned(),
        watch_namespaces: Vec::new(),
        settings_configmap: "modelgate-settings".to_owned(),
        table_secret: BASE.to_owned(),
        admin_token_file: token,
        dataplane_ca_secret: None,
        dataplane_tls_server_name: None,
        listen: "127.0.0.1:0".parse().expect("an address"),
        lease_name: "modelgate-operator".to_owned(),
        lease_duration: Duration::from_secs(15),
        identity: "operator-test".to_owned(),
        poll_interval: Duration::from_millis(200),
        push_timeout: Duration::from_secs(2),
        debounce: Duration::from_millis(20),
        health_refresh: Duration::from_secs(60),
    }
}

/// How long a whole-controller scenario may take to get somewhere.
const SETTLE: Duration = Duration::from_secs(30);

/// A controller running against a mocked API server and a fake data plane.
struct Harness {
    journal: Journal,
    data_plane: Arc<Mutex<DataPlaneState>>,
    metrics: Arc<Metrics>,
    controller: tokio::task::JoinHandle<modelgate_operator::error::Result<()>>,
    helpers: Vec<tokio::task::JoinHandle<()>>,
    dir: PathBuf,
}

impl Harness {
    async fn start(
        scenario: &str,
        cluster_of: impl FnOnce(SocketAddr) -> Cluster,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_with(scenario, cluster_of, configure, DataPlaneState::default()).await
    }

    async fn start_with(
        scenario: &str,
        cluster_of: impl FnOnce(SocketAddr) -> Cluster,
        configure: impl FnOnce(&mut Config),
        data_plane: DataPlaneState,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "modelgate-api-mock-{}-{scenario}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let token = dir.join("admin-token");
        std::fs::write(&token, "s3cret\n").expect("the token file is written");

        let data_plane = Arc::new(Mutex::new(data_plane));
        let (admin, data_plane_task) = spawn_data_plane(data_plane.clone()).await;
        let (client, server) = mock::client();
        let journal: Journal = Arc::default();
        let responder = spawn_responder(server, cluster_of(admin), journal.clone());

        let mut config = config(token.clone());
        configure(&mut config);
        let dataplanes = DataPlaneClient::new(
            Arc::new(TokenFile::new(token)),
            &TlsOptions::default(),
            config.push_timeout,
        )
        .expect("a data-plane client");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_owned(),
                instance: Some(config.identity.clone()),
            },
        );
        let metrics = Arc::new(Metrics::default());
        let ctx = Context {
            client,
            config,
            metrics: metrics.clone(),
            recorder,
            dataplanes,
        };
        Harness {
            journal,
            data_plane,
            metrics,
            controller: tokio::spawn(Controller::run(ctx)),
            helpers: vec![responder, data_plane_task],
            dir,
        }
    }

    fn calls(&self) -> Vec<Recorded> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Bodies of the PATCHes to `path`, oldest first.
    fn patches_to(&self, path: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == Method::PATCH && c.path == path)
            .map(|c| c.body)
            .collect()
    }

    /// Events POSTed in `namespace`.
    fn events(&self, namespace: &str) -> Vec<Value> {
        let path = format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events");
        self.calls()
            .into_iter()
            .filter(|c| c.method == Method::POST && c.path == path)
            .map(|c| c.body)
            .collect()
    }

    /// Tables pushed to the data plane, oldest first, with their `Authorization`.
    fn pushes(&self) -> Vec<(Option<String>, Value)> {
        self.data_plane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pushes
            .clone()
    }

    /// The list call (not a watch) of `path`.
    fn list_call(&self, path: &str) -> Option<Recorded> {
        self.calls()
            .into_iter()
            .find(|c| c.method == Method::GET && c.path == path && !c.query.contains_key("watch"))
    }

    async fn stop(self) {
        self.controller.abort();
        let stopped = self.controller.await;
        assert!(
            stopped.is_err_and(|e| e.is_cancelled()),
            "the controller runs until stopped"
        );
        for h in &self.helpers {
            h.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn is_condition(status: &Value, type_: &str, value: &str, reason: &str) -> bool {
    condition(status, type_).is_some_and(|c| c["status"] == value && c["reason"] == reason)
}

/// Polls `check` every 50 ms until it holds, for at most `within`.
async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn deployment_ids(table: &Value) -> Vec<&str> {
    table["deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["id"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_pushes_the_table_snapshots_it_and_reports_status_and_events() {
    let h = Harness::start("happy", cluster, |_| {}).await;

    // The data plane gets the table: the good deployment in, the bad one left out.
    eventually(SETTLE, "a push reaches the data plane", || {
        !h.pushes().is_empty()
    })
    .await;
    let (auth, table) = h.pushes().remove(0);
    assert_eq!(
        auth.as_deref(),
        Some("Bearer s3cret"),
        "the admin token goes along"
    );
    assert_eq!(deployment_ids(&table), ["team/good"]);
    assert_eq!(
        table["revision"], 1,
        "no snapshot: the sequence starts at 1"
    );
    assert!(
        table["aliases"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["id"] == "team/chat")),
        "{}",
        table["aliases"]
    );
    let version = table["version"].clone();

    // The snapshot is applied, its manifest naming the table's revision and version.
    let snapshot_path = secret_path(BASE);
    eventually(SETTLE, "the snapshot Secret is applied", || {
        !h.patches_to(&snapshot_path).is_empty()
    })
    .await;
    let manifest = h.patches_to(&snapshot_path).remove(0);
    assert_eq!(
        unbase64(manifest["data"]["revision"].as_str().expect("revision")),
        b"1"
    );
    assert_eq!(
        unbase64(manifest["data"]["version"].as_str().expect("version")),
        version.as_str().expect("a version").as_bytes()
    );
    let snapshotted = gunzip(&unbase64(
        manifest["data"]["table.json.gz.000"]
            .as_str()
            .expect("part 0"),
    ))
    .expect("the part is gzip");
    let snapshotted: Value = serde_json::from_slice(&snapshotted).expect("the part is a table");
    assert_eq!(
        snapshotted["version"], version,
        "the snapshot holds the pushed table"
    );
    let apply = h
        .calls()
        .into_iter()
        .find(|c| c.method == Method::PATCH && c.path == snapshot_path)
        .expect("recorded");
    assert_eq!(
        apply.query.get("fieldManager").map(String::as_str),
        Some(FIELD_MANAGER)
    );
    assert_eq!(apply.query.get("force").map(String::as_str), Some("true"));

    // The good deployment: accepted, served by the one data plane, healthy.
    let good = status_path("good");
    eventually(
        SETTLE,
        "a status with Accepted, Ready and Healthy True",
        || {
            h.patches_to(&good).iter().any(|p| {
                let s = &p["status"];
                is_condition(s, "Accepted", "True", "Accepted")
                    && is_condition(s, "Ready", "True", "Served")
                    && is_condition(s, "Healthy", "True", "Healthy")
                    && s["dataplanes"] == json!({"ready": 1, "total": 1})
            })
        },
    )
    .await;
    let last = h.patches_to(&good).pop().expect("a status");
    assert_eq!(last["apiVersion"], "modelgate.dev/v1alpha1");
    assert_eq!(last["kind"], "ModelDeployment");
    assert_eq!(last["status"]["tableVersion"], version);
    assert_eq!(last["status"]["health"]["latencyMs"], 3);
    assert_eq!(
        last["status"]["health"]["lastCheckTime"],
        "2026-03-01T12:00:00Z"
    );

    // The bad one: rejected for its missing Secret.
    let bad = status_path("bad");
    eventually(SETTLE, "the bad deployment is rejected", || {
        h.patches_to(&bad)
            .iter()
            .any(|p| is_condition(&p["status"], "Accepted", "False", "MissingSecret"))
    })
    .await;
    let rejected = h.patches_to(&bad).pop().expect("a status");
    assert!(is_condition(
        &rejected["status"],
        "Ready",
        "False",
        "NotAccepted"
    ));
    assert!(is_condition(
        &rejected["status"],
        "Healthy",
        "Unknown",
        "NotAccepted"
    ));

    // The alias: accepted, its one target healthy.
    eventually(SETTLE, "the alias is healthy", || {
        h.patches_to(ALIAS_STATUS_PATH)
            .iter()
            .any(|p| is_condition(&p["status"], "Healthy", "True", "Healthy"))
    })
    .await;

    // Events: acceptance, rejection, and the first full rollout.
    eventually(SETTLE, "a Pushed event for the good deployment", || {
        h.events("team")
            .iter()
            .any(|e| e["reason"] == "Pushed" && e["regarding"]["name"] == "good")
    })
    .await;
    let events = h.events("team");
    let rejected_event = events
        .iter()
        .find(|e| e["reason"] == "Rejected" && e["regarding"]["name"] == "bad")
        .expect("a Rejected event for the bad deployment");
    assert_eq!(rejected_event["type"], "Warning");
    assert!(
        rejected_event["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("MissingSecret: ")),
        "{rejected_event}"
    );
    assert_eq!(rejected_event["regarding"]["kind"], "ModelDeployment");
    assert_eq!(rejected_event["regarding"]["uid"], "uid-bad");
    assert_eq!(rejected_event["reportingController"], FIELD_MANAGER);
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "Accepted" && e["regarding"]["name"] == "good")
    );
    let pushed = events
        .iter()
        .filter(|e| e["reason"] == "Pushed" && e["regarding"]["name"] == "good")
        .count();
    assert_eq!(pushed, 1, "one Pushed event per generation");

    // The watches' lists, with their selectors.
    let secrets = h.list_call("/api/v1/secrets").expect("Secrets are listed");
    assert_eq!(
        secrets.query.get("labelSelector").map(String::as_str),
        Some("!modelgate.dev/routing-table"),
        "the snapshot Secrets are not watched"
    );
    let pods = h.list_call("/api/v1/pods").expect("Pods are listed");
    assert_eq!(
        pods.query.get("labelSelector").map(String::as_str),
        Some("modelgate.dev/dataplane=true")
    );
    let settings = h
        .list_call("/api/v1/namespaces/modelgate-system/configmaps")
        .expect("the settings ConfigMap is listed");
    assert_eq!(
        settings.query.get("fieldSelector").map(String::as_str),
        Some("metadata.name=modelgate-settings")
    );
    for path in [
        "/apis/modelgate.dev/v1alpha1/modeldeployments",
        "/apis/modelgate.dev/v1alpha1/modelgroupaliases",
    ] {
        assert!(h.list_call(path).is_some(), "{path} is listed cluster-wide");
    }

    // The snapshot was read first; nothing else was written.
    let calls = h.calls();
    assert_eq!(
        (&calls[0].method, calls[0].path.as_str()),
        (&Method::GET, snapshot_path.as_str())
    );
    for c in &calls {
        let expected = match c.method {
            Method::GET => true,
            Method::PATCH => c.path == snapshot_path || c.path.ends_with("/status"),
            Method::POST => c.path == "/apis/events.k8s.io/v1/namespaces/team/events",
            Method::DELETE => c.path == secret_path("modelgate-routing-table-1"),
            _ => false,
        };
        assert!(expected, "unexpected {} {}", c.method, c.path);
    }
    assert!(
        h.metrics
            .render()
            .contains("modelgate_operator_table_revision 1\n")
    );
    assert!(
        h.metrics
            .render()
            .contains("modelgate_operator_dataplanes 1\n")
    );

    h.stop().await;
}

/// The snapshot manifest a previous leader left: `revision`, `version`.
fn snapshot_manifest(revision: u64, version: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": BASE, "namespace": "modelgate-system", "resourceVersion": "50"},
        "data": {
            "parts": base64(b"1"),
            "revision": base64(revision.to_string().as_bytes()),
            "version": base64(version.as_bytes()),
        },
    })
}

/// The version the controller's compile gives `cluster`, computed the same way.
fn compiled_version(cluster: &Cluster) -> String {
    let deployments: Vec<modelgate_crds::ModelDeployment> = cluster
        .deployments
        .iter()
        .map(|d| serde_json::from_value(d.clone()).expect("a ModelDeployment"))
        .collect();
    let aliases: Vec<modelgate_crds::ModelGroupAlias> = cluster
        .aliases
        .iter()
        .map(|a| serde_json::from_value(a.clone()).expect("a ModelGroupAlias"))
        .collect();
    let mut secrets = modelgate_operator::compile::SecretStore::new();
    for s in &cluster.secrets {
        let s: Secret = serde_json::from_value(s.clone()).expect("a Secret");
        secrets.insert_secret(&s, modelgate_operator::compile::DEFAULT_NAMESPACE);
    }
    let compiled = modelgate_operator::compile::compile(
        &modelgate_operator::compile::Inputs {
            deployments: &deployments,
            aliases: &aliases,
            secrets: &secrets,
            settings: &modelgate_crds::RouterSettings::default(),
            settings_namespace: "modelgate-system",
        },
        1,
    );
    compiled.table.version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_continues_the_revision_sequence_of_the_snapshot() {
    let h = Harness::start(
        "next-revision",
        |admin| Cluster {
            snapshot: Some(snapshot_manifest(41, "sha256:an-older-table")),
            ..cluster(admin)
        },
        |_| {},
    )
    .await;

    eventually(SETTLE, "a push reaches the data plane", || {
        !h.pushes().is_empty()
    })
    .await;
    assert_eq!(
        h.pushes()[0].1["revision"],
        42,
        "the next revision after the snapshot's"
    );
    eventually(SETTLE, "the snapshot is rewritten", || {
        !h.patches_to(&secret_path(BASE)).is_empty()
    })
    .await;
    let manifest = h.patches_to(&secret_path(BASE)).remove(0);
    assert_eq!(
        unbase64(manifest["data"]["revision"].as_str().expect("revision")),
        b"42"
    );

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_keeps_the_snapshot_revision_when_the_content_is_the_same() {
    let h = Harness::start(
        "same-revision",
        |admin| {
            let c = cluster(admin);
            let version = compiled_version(&c);
            Cluster {
                snapshot: Some(snapshot_manifest(41, &version)),
                ..c
            }
        },
        |_| {},
    )
    .await;

    eventually(SETTLE, "a push reaches the data plane", || {
        !h.pushes().is_empty()
    })
    .await;
    assert_eq!(
        h.pushes()[0].1["revision"],
        41,
        "the same table keeps its revision"
    );

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_scoped_to_namespaces_watches_those_and_its_own_only() {
    let h = Harness::start("scoped", cluster, |c| {
        c.watch_namespaces = vec!["team".to_owned()];
    })
    .await;

    // The data-plane pod lives in `apps`, outside the scope: no data plane is found.
    let good = status_path("good");
    eventually(SETTLE, "the good deployment has a status", || {
        h.patches_to(&good)
            .iter()
            .any(|p| is_condition(&p["status"], "Ready", "False", "NoDataPlanes"))
    })
    .await;
    assert!(h.pushes().is_empty(), "no pod of the scope");

    for path in [
        "/apis/modelgate.dev/v1alpha1/namespaces/team/modeldeployments",
        "/apis/modelgate.dev/v1alpha1/namespaces/team/modelgroupaliases",
        "/api/v1/namespaces/team/secrets",
        "/api/v1/namespaces/modelgate-system/secrets",
        "/api/v1/namespaces/team/pods",
        "/api/v1/namespaces/modelgate-system/pods",
        "/api/v1/namespaces/modelgate-system/configmaps",
    ] {
        assert!(h.list_call(path).is_some(), "{path} is listed");
    }
    let listed: BTreeSet<String> = h
        .calls()
        .into_iter()
        .filter(|c| c.method == Method::GET && !c.query.contains_key("watch"))
        .map(|c| c.path)
        .collect();
    for cluster_wide in [
        "/apis/modelgate.dev/v1alpha1/modeldeployments",
        "/api/v1/secrets",
        "/api/v1/pods",
        "/api/v1/namespaces/apps/pods",
    ] {
        assert!(
            !listed.contains(cluster_wide),
            "{cluster_wide} is not listed"
        );
    }

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_settings_configmap_is_reported_with_a_warning_event() {
    let h = Harness::start(
        "settings",
        |admin| Cluster {
            configmaps: vec![json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "modelgate-settings", "namespace": "modelgate-system",
                    "uid": "uid-settings", "resourceVersion": "14",
                },
                "data": {"settings.yaml": "retries: [not, a, number"},
            })],
            ..cluster(admin)
        },
        |_| {},
    )
    .await;

    eventually(SETTLE, "an InvalidSettings event", || {
        h.events("modelgate-system")
            .iter()
            .any(|e| e["reason"] == "InvalidSettings")
    })
    .await;
    let event = h
        .events("modelgate-system")
        .into_iter()
        .find(|e| e["reason"] == "InvalidSettings")
        .expect("the event");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "ConfigMap");
    assert_eq!(event["regarding"]["name"], "modelgate-settings");
    assert!(
        event["note"]
            .as_str()
            .is_some_and(|n| n.contains("the last good settings stay in force")),
        "{event}"
    );
    // The defaults apply meanwhile: the table is still served.
    eventually(SETTLE, "a push reaches the data plane", || {
        !h.pushes().is_empty()
    })
    .await;

    h.stop().await;
}

/// Writes of PushFailed Events about the data-plane pod: `(method, body)`.
fn push_failed_writes(h: &Harness) -> Vec<(Method, Value)> {
    h.calls()
        .into_iter()
        .filter(|c| {
            c.path
                .starts_with("/apis/events.k8s.io/v1/namespaces/apps/events")
        })
        .filter(|c| c.body["reason"] == "PushFailed")
        .map(|c| (c.method, c.body))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_refusing_the_table_is_reported_on_its_pod_and_in_status() {
    let h = Harness::start_with(
        "refused",
        cluster,
        |_| {},
        DataPlaneState {
            refuse_pushes: Some(400),
            ..DataPlaneState::default()
        },
    )
    .await;

    eventually(SETTLE, "a PushFailed event about the pod", || {
        !push_failed_writes(&h).is_empty()
    })
    .await;
    let (method, event) = push_failed_writes(&h).remove(0);
    assert_eq!(method, Method::POST);
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "Pod");
    assert_eq!(event["regarding"]["name"], "gateway-0");
    assert_eq!(event["regarding"]["uid"], "uid-gw");
    assert!(
        event["note"]
            .as_str()
            .is_some_and(|n| n.contains("the table needs a newer data plane")),
        "{event}"
    );
    assert!(
        !event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("s3cret"),
        "never the token"
    );

    eventually(SETTLE, "the good deployment is converging on 0/1", || {
        h.patches_to(&status_path("good")).iter().any(|p| {
            is_condition(&p["status"], "Ready", "False", "Converging")
                && p["status"]["dataplanes"] == json!({"ready": 0, "total": 1})
        })
    })
    .await;
    assert!(h.pushes().is_empty());

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_that_keeps_refusing_the_table_is_announced_once() {
    let h = Harness::start_with(
        "refused-repeatedly",
        cluster,
        |_| {},
        DataPlaneState {
            refuse_pushes: Some(400),
            ..DataPlaneState::default()
        },
    )
    .await;

    // Ten poll intervals (200 ms) of refusals.
    eventually(SETTLE, "the first refusal", || {
        h.data_plane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused
            > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = h
        .data_plane
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .refused;
    assert!(
        refused >= 3,
        "the table is offered again each poll ({refused} times)"
    );

    let writes = push_failed_writes(&h);
    assert_eq!(
        writes.len(),
        1,
        "one Event per failure streak, got {} writes ({:?})",
        writes.len(),
        writes.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>()
    );

    h.stop().await;
}

/// Longest `note` the API server accepts in an `events.k8s.io/v1` Event.
const MAX_EVENT_NOTE: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_refusal_still_makes_an_event_the_api_server_accepts() {
    let h = Harness::start_with(
        "long-refusal",
        cluster,
        |_| {},
        DataPlaneState {
            refuse_pushes: Some(422),
            refusal: format!(
                "invalid table: {}",
                "deployments[0]: unknown field; ".repeat(60)
            ),
            ..DataPlaneState::default()
        },
    )
    .await;

    eventually(SETTLE, "a PushFailed event about the pod", || {
        !push_failed_writes(&h).is_empty()
    })
    .await;
    let (_, event) = push_failed_writes(&h).remove(0);
    let note = event["note"].as_str().unwrap_or_default();
    assert!(
        note.len() <= MAX_EVENT_NOTE,
        "a note of {} bytes",
        note.len()
    );

    h.stop().await;
}
