//! A pod worker tells a real data plane (in-process, its admin API over 127.0.0.1) the fleet
//! size: when the pod appears and whenever the size changes, without touching the table it
//! serves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use modelgate_dataplane::{App, Config, bind, client, run};
use modelgate_dataplane_api::Fleet;
use modelgate_operator::controller::worker::{self, WorkerConfig};
use modelgate_operator::fleet::DataPlanePod;
use modelgate_operator::push::{DataPlaneClient, TlsOptions, TokenFile};
use modelgate_operator::telemetry::Metrics;
use tokio::sync::{mpsc, watch};

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_tells_the_pod_the_fleet_size_and_every_change() {
    let dir = std::env::temp_dir().join(format!("modelgate-fleet-push-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let token = dir.join("admin-token");
    std::fs::write(&token, "s3cret\n").expect("the token file");

    let config = Config {
        admin_listen: Some("127.0.0.1:0".parse().expect("address")),
        metrics_listen: None,
        admin_token_file: Some(token.clone()),
        drain_timeout: Duration::from_secs(1),
        ..Config::new("127.0.0.1:0".parse().expect("address"))
    };
    let app = App::new(client::build(None).expect("the upstream client"));
    let listeners = bind(&config).await.expect("bind the data plane");
    let admin = listeners
        .admin
        .as_ref()
        .expect("an admin listener")
        .local_addr()
        .expect("admin address");
    let (stop, stopped) = watch::channel(false);
    let serving = tokio::spawn({
        let app = Arc::clone(&app);
        async move { run(app, &config, listeners, stopped).await }
    });
    // Alone until told otherwise.
    assert_eq!(app.limiter().divisor(), 1);

    let pod = DataPlanePod {
        key: "modelgate/gw-0".to_owned(),
        uid: "u0".to_owned(),
        admin,
        restarts: 0,
        gateway: true,
        ready: true,
    };
    let client = DataPlaneClient::new(
        Arc::new(TokenFile::new(token)),
        &TlsOptions::default(),
        Duration::from_secs(2),
    )
    .expect("a data-plane client");
    let (_table, table_rx) = watch::channel(None);
    let (fleet, fleet_rx) = watch::channel(Fleet {
        gateways: 3,
        sidecars: 1,
    });
    let (events, _events_rx) = mpsc::unbounded_channel();
    let _worker = worker::start(
        pod,
        client,
        table_rx,
        fleet_rx,
        events,
        Arc::new(Metrics::default()),
        WorkerConfig {
            poll: Duration::from_millis(100),
            attempts: 2,
            backoff: Duration::from_millis(10),
        },
    );

    until("the pod divides by 3", || app.limiter().divisor() == 3).await;
    let described = app.limiter().describe();
    assert_eq!(described["gateways"], 3);
    assert_eq!(described["sidecars"], 1);

    fleet.send_replace(Fleet {
        gateways: 5,
        sidecars: 0,
    });
    until("the pod divides by 5", || app.limiter().divisor() == 5).await;

    // The fleet size is not a table: the pod still serves none.
    assert_eq!(app.served(), None);

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
    let _ = std::fs::remove_dir_all(&dir);
}
