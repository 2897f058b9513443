//! `modelgate-dataplane`: serves the OpenAI API by the routing table the operator pushes.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use modelgate_dataplane::{App, Config, bind, client, run, table};

#[derive(Debug, Parser)]
#[command(
    name = "modelgate-dataplane",
    version,
    about = "Modelgate's data plane"
)]
struct Args {
    /// Address of the OpenAI API.
    #[arg(long, default_value = "0.0.0.0:4000", env = "MODELGATE_LISTEN")]
    listen: SocketAddr,
    /// Address of the admin API (routing-table pushes, health report).
    #[arg(long, default_value = "0.0.0.0:4001", env = "MODELGATE_ADMIN_LISTEN")]
    admin_listen: SocketAddr,
    /// Address of the Prometheus metrics endpoint (`/metrics`).
    #[arg(long, default_value = "0.0.0.0:9464", env = "MODELGATE_METRICS_LISTEN")]
    metrics_listen: SocketAddr,
    /// File holding the admin bearer token; re-read when it changes.
    #[arg(long, env = "MODELGATE_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// A routing table to start with (JSON, gzip accepted), e.g. the mounted snapshot;
    /// re-read when it changes.
    #[arg(long, env = "MODELGATE_TABLE_FILE")]
    table_file: Option<PathBuf>,
    /// Extra CA bundle (PEM) trusted for HTTPS upstreams.
    #[arg(long, env = "MODELGATE_CA_BUNDLE")]
    ca_bundle: Option<PathBuf>,
    /// Seconds in-flight requests and streams may take to finish on SIGTERM.
    #[arg(long, default_value_t = 30, env = "MODELGATE_DRAIN_SECONDS")]
    drain_seconds: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MODELGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("modelgate-dataplane: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelgate-dataplane: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let config = Config {
        listen: args.listen,
        admin_listen: Some(args.admin_listen),
        metrics_listen: Some(args.metrics_listen),
        admin_token_file: args.admin_token_file,
        ca_bundle: args.ca_bundle,
        drain_timeout: Duration::from_secs(args.drain_seconds),
    };
    let client = client::build(config.ca_bundle.as_deref())?;
    let app = App::new(client);
    let listeners = bind(&config).await?;
    tracing::info!(listen = %config.listen, admin = ?config.admin_listen, "serving");
    let (tx, rx) = tokio::sync::watch::channel(false);
    if let Some(path) = args.table_file.clone() {
        // Loads it now, and again whenever it changes.
        tokio::spawn(table::watch_file(
            std::sync::Arc::clone(&app),
            path,
            Duration::from_secs(2),
            rx.clone(),
        ));
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining");
        let _ = tx.send(true);
    });
    run(app, &config, listeners, rx).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
