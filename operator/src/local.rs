//! `operator local`: compiles manifests from files with the same compiler as in the
//! cluster and serves the data plane in-process — for laptops, demos and CI. The files are
//! watched: an edit is compiled and swapped in; a broken edit is reported and the last good
//! table keeps serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use modelgate_dataplane::{App, Config};
use modelgate_dataplane_api::RoutingTable;

use crate::compile::{self, Severity};
use crate::manifests::Manifests;

/// Flags of `operator local`.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Manifest files or folders (ModelDeployment, ModelGroupAlias, Secret, RouterSettings).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// A RouterSettings document (instead of one in the manifests).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Address of the OpenAI API.
    #[arg(long, default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,
    /// Address of the Prometheus metrics endpoint; none by default.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Namespace of the settings document, where its Secret references point.
    #[arg(long, default_value = compile::DEFAULT_NAMESPACE)]
    pub settings_namespace: String,
    /// Extra CA bundle (PEM) trusted for HTTPS upstreams.
    #[arg(long)]
    pub ca_bundle: Option<PathBuf>,
    /// How often the files are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// The data plane's hardening limits, as `modelgate-dataplane` takes them.
    #[command(flatten)]
    pub limits: modelgate_dataplane::hardening::LimitArgs,
    /// Runtime worker threads; by default the CPUs the process may use. With one, a
    /// single-threaded runtime serves everything.
    #[arg(long, env = "MODELGATE_WORKER_THREADS")]
    pub worker_threads: Option<std::num::NonZeroUsize>,
}

/// Reads and compiles the manifests; prints every diagnostic to stderr. Fails when the
/// files cannot be read or the table is not whole.
pub fn load(args: &LocalArgs, revision: u64) -> anyhow::Result<RoutingTable> {
    let manifests = Manifests::load(&args.files)?;
    let settings = manifests.settings(args.settings.as_deref())?;
    let compiled = manifests.compile(&settings, &args.settings_namespace, revision);
    for (key, diags) in compiled.diagnostics.iter() {
        for d in diags {
            match d.severity {
                Severity::Error => tracing::error!("{key} left out: {}: {}", d.reason, d.message),
                Severity::Warning => tracing::warn!("{key}: {}: {}", d.reason, d.message),
            }
        }
    }
    if let Err(errors) = compiled.table.validate() {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("the routing table cannot be served: {}", text.join("; "));
    }
    Ok(compiled.table)
}

/// Modification times and sizes of every manifest file: what the watcher compares.
fn fingerprint(args: &LocalArgs) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    fn walk(p: &Path, out: &mut Vec<(PathBuf, Option<SystemTime>, u64)>) {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                if let Ok(entries) = std::fs::read_dir(p) {
                    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                    entries.sort();
                    for e in entries {
                        walk(&e, out);
                    }
                }
            }
            Ok(m) => out.push((p.to_owned(), m.modified().ok(), m.len())),
            Err(_) => out.push((p.to_owned(), None, 0)),
        }
    }
    let mut out = Vec::new();
    for p in args.files.iter().chain(args.settings.iter()) {
        walk(p, &mut out);
    }
    out
}

/// Runs the gateway until Ctrl-C / SIGTERM.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let table = load(&args, 1)?;
    let mut config = Config::new(args.listen);
    config.metrics_listen = args.metrics_listen;
    config.ca_bundle = args.ca_bundle.clone();
    config.drain_timeout = Duration::from_secs(10);
    args.limits.apply(&mut config);
    let client = modelgate_dataplane::client::build(config.ca_bundle.as_deref())?;
    let app = App::new(client);
    app.offer(table).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listeners = modelgate_dataplane::bind(&config).await?;
    let addr = listeners.public.local_addr()?;
    eprintln!(
        "modelgate: serving the OpenAI API on http://{addr}/v1 (models: curl http://{addr}/v1/models); Ctrl-C to stop"
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch(Arc::clone(&app), args.clone()));
    tokio::spawn(async move {
        modelgate_dataplane::server::shutdown_signal().await;
        let _ = tx.send(true);
    });
    modelgate_dataplane::run(app, &config, listeners, rx).await;
    watcher.abort();
    Ok(())
}

/// Recompiles when the files change; swaps in tables whose content changed.
async fn watch(app: Arc<App>, args: LocalArgs) {
    let mut last = fingerprint(&args);
    let mut revision = 1;
    let mut interval = tokio::time::interval(Duration::from_millis(args.poll_ms.max(50)));
    loop {
        interval.tick().await;
        let now = fingerprint(&args);
        if now == last {
            continue;
        }
        last = now;
        let served = app.served().map(|(_, v)| v);
        let loaded = {
            let args = args.clone();
            let next = revision + 1;
            tokio::task::spawn_blocking(move || load(&args, next)).await
        };
        match loaded {
            Ok(Ok(table)) if Some(&table.version) == served.as_ref() => {}
            Ok(Ok(table)) => {
                revision += 1;
                match app.offer(table) {
                    Ok(a) => {
                        tracing::info!(revision = a.revision, "manifests changed: new table served")
                    }
                    Err(e) => tracing::error!("manifests changed but the table was refused: {e}"),
                }
            }
            Ok(Err(e)) => tracing::error!(
                "manifests changed but cannot be loaded; the last good table keeps serving: {e:#}"
            ),
            Err(e) => tracing::error!("reload failed: {e}"),
        }
    }
}
