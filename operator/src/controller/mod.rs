//! The controller: watches the resources, compiles them into one routing table, pushes it
//! to every data-plane pod, keeps a snapshot of it in Secrets, and writes what it observed
//! into each resource's status.
//!
//! One task owns the state ([`Controller`]) and reacts to three inputs: watch triggers
//! (debounced into one compile of the whole table), fleet events from the per-pod workers
//! ([`worker`]), and its own timers. Kubernetes writes happen off that task: status writes
//! ([`writer`]), the snapshot Secrets and Events each have a task of their own that always
//! works on the latest desired state, so a slow API server never delays a push.

mod reconcile;
pub mod watch;
pub mod worker;
pub mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, GroupVersionKind};
use kube::runtime::events::{Recorder, Reporter};

use crate::error::{Error, Result};
use crate::leader::{self, LeaseConfig};
use crate::push::{DataPlaneClient, TlsOptions, TokenFile};
use crate::telemetry::{self, Metrics};

pub use reconcile::Controller;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "modelgate-operator";

fn parse_duration(s: &str) -> Result<Duration, String> {
    modelgate_crds::parse_duration(s).map_err(|e| e.to_string())
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "operator".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Flags of `modelgate-operator run`.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// The operator's namespace: the settings ConfigMap, the snapshot Secrets, the Lease
    /// and the data-plane CA Secret live here.
    #[arg(long, env = "POD_NAMESPACE", default_value = "modelgate-system")]
    pub namespace: String,
    /// Namespaces whose resources feed the fleet, comma-separated; all when empty.
    #[arg(
        long,
        env = "MODELGATE_WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub watch_namespaces: Vec<String>,
    /// ConfigMap holding the RouterSettings document under `settings.yaml`.
    #[arg(long, default_value = "modelgate-settings")]
    pub settings_configmap: String,
    /// Base name of the Secrets holding the routing-table snapshot.
    #[arg(long, default_value = "modelgate-routing-table")]
    pub table_secret: String,
    /// File holding the data planes' admin token (re-read when it changes).
    #[arg(long, env = "MODELGATE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: PathBuf,
    /// Secret (in the operator's namespace, key `ca.crt`) with the CA bundle the data
    /// planes' admin certificates chain to; pushes go over TLS when set.
    #[arg(long)]
    pub dataplane_ca_secret: Option<String>,
    /// Name checked in the data planes' certificates (instead of their pod IP).
    #[arg(long)]
    pub dataplane_tls_server_name: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Name of the Lease used for leader election.
    #[arg(long, default_value = "modelgate-operator")]
    pub lease_name: String,
    /// How long the lease lasts without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value_t = default_identity())]
    pub identity: String,
    /// How often each data plane's health report is read.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Timeout of one call to a data plane.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub push_timeout: Duration,
    /// Quiet time gathering changes into one compile.
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub debounce: Duration,
    /// How often health figures alone (check time, latency) are refreshed in status.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub health_refresh: Duration,
}

/// What the controller's parts share.
#[derive(Clone)]
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The flags.
    pub config: Config,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Talks to data-plane pods.
    pub dataplanes: DataPlaneClient,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Checks through API discovery (no CRD read permission needed) that both resources are
/// served.
pub async fn check_resources(client: &Client) -> Result<()> {
    for kind in ["ModelDeployment", "ModelGroupAlias"] {
        let gvk = GroupVersionKind::gvk(modelgate_crds::GROUP, modelgate_crds::VERSION, kind);
        match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(Error::CrdsMissing(format!(
                    "the API server does not serve {kind} ({}/{}); install the CRDs first: \
                     `kubectl apply -f crds/yaml/` (or `helm install` the chart with crds.enabled=true)",
                    modelgate_crds::GROUP,
                    modelgate_crds::VERSION
                )));
            }
            Err(kube::Error::Discovery(e)) => {
                return Err(Error::CrdsMissing(format!(
                    "the API server does not serve {kind} ({}/{}): {e}; install the CRDs first: \
                     `kubectl apply -f crds/yaml/` (or `helm install` the chart with crds.enabled=true)",
                    modelgate_crds::GROUP,
                    modelgate_crds::VERSION
                )));
            }
            Err(e) => return Err(Error::kube("discovering the modelgate.dev API", e)),
        }
    }
    Ok(())
}

async fn dataplane_tls(client: &Client, config: &Config) -> Result<TlsOptions> {
    let Some(name) = &config.dataplane_ca_secret else {
        return Ok(TlsOptions::default());
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let secret = api
        .get(name)
        .await
        .map_err(|e| Error::kube(format!("reading the data-plane CA Secret {name}"), e))?;
    let ca = secret
        .data
        .and_then(|mut d| d.remove("ca.crt"))
        .ok_or_else(|| Error::Config(format!("Secret {name} has no key ca.crt")))?;
    Ok(TlsOptions {
        ca_pem: Some(ca.0),
        server_name: config.dataplane_tls_server_name.clone(),
    })
}

/// Runs the operator: serves its metrics, waits for the API server and the CRDs, takes
/// the lease, and runs the controller until SIGTERM or until leadership is lost.
pub async fn run(config: Config) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let listener = telemetry::bind(config.listen)
        .await
        .map_err(|e| Error::io(format!("binding {}", config.listen), e))?;
    tokio::spawn(telemetry::serve(listener, metrics.clone()));
    let shutdown = modelgate_dataplane::server::shutdown_signal();
    tokio::pin!(shutdown);

    let client = tokio::select! {
        c = connect() => c?,
        () = &mut shutdown => return Ok(()),
    };
    // The API server may be unreachable for a while: retry, never crash. Missing CRDs are
    // a setup error: exit with a hint.
    let mut delay = Duration::from_millis(250);
    loop {
        match check_resources(&client).await {
            Ok(()) => break,
            Err(e @ Error::CrdsMissing(_)) => return Err(e),
            Err(e) => {
                tracing::warn!("the API server is not answering yet, retrying in {delay:?}: {e}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = &mut shutdown => return Ok(()),
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    metrics.set_ready(true);

    let token = Arc::new(TokenFile::new(config.admin_token_file.clone()));
    token.get().map_err(|e| Error::Config(e.to_string()))?;
    // The CA Secret may not exist yet (cert-manager issues it after the install): wait for
    // it rather than crash-looping; a Secret without `ca.crt` is a setup error.
    let mut delay = Duration::from_millis(500);
    let tls = loop {
        match dataplane_tls(&client, &config).await {
            Ok(t) => break t,
            Err(e @ Error::Config(_)) => return Err(e),
            Err(e) => {
                tracing::warn!("waiting for the data-plane CA Secret, retrying in {delay:?}: {e}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = &mut shutdown => return Ok(()),
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    let dataplanes = DataPlaneClient::new(token, &tls, config.push_timeout)
        .map_err(|e| Error::Config(e.to_string()))?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: Some(config.identity.clone()),
        },
    );
    let ctx = Context {
        client: client.clone(),
        config: config.clone(),
        metrics: metrics.clone(),
        recorder,
        dataplanes,
    };

    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let lease = LeaseConfig {
        name: config.lease_name.clone(),
        identity: config.identity.clone(),
        duration: config.lease_duration,
    };
    // Lead while holding the lease; a replica that loses it (the API server unreachable
    // for a whole lease duration, or another replica took over) stops everything it
    // started and stands by again, without exiting.
    loop {
        let mut leader = tokio::select! {
            l = leader::acquire(leases.clone(), lease.clone()) => l,
            () = &mut shutdown => return Ok(()),
        };
        metrics.set_leader(true);
        let outcome = tokio::select! {
            r = Controller::run(ctx.clone()) => Some(r),
            e = leader.hold() => {
                tracing::error!("{e}; standing by");
                None
            }
            () = &mut shutdown => {
                tracing::info!("shutting down");
                Some(Ok(()))
            }
        };
        metrics.set_leader(false);
        if let Some(result) = outcome {
            leader.release().await;
            return result;
        }
    }
}

async fn connect() -> Result<Client> {
    let mut delay = Duration::from_millis(250);
    loop {
        match Client::try_default().await {
            Ok(c) => return Ok(c),
            Err(e @ kube::Error::InferConfig(_)) => {
                return Err(Error::kube(
                    "finding a kubeconfig or in-cluster configuration",
                    e,
                ));
            }
            Err(e) => {
                tracing::warn!("cannot build the Kubernetes client, retrying in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}
