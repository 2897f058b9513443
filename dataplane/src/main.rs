//! `modelgate-dataplane`: serves the OpenAI API by the routing table the operator pushes.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use modelgate_dataplane::hardening::LimitArgs;
use modelgate_dataplane::tls::TlsFiles;
use modelgate_dataplane::{App, Config, bind, client, run, table};

/// jemalloc with background purging: after a table swap the old table's pages go back to
/// the OS within seconds (glibc kept a push's peak; see BENCHMARKS.md, Memory).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "modelgate-dataplane",
    version,
    about = "Modelgate's data plane"
)]
struct Args {
    /// Runtime worker threads; by default the CPUs the process may use (its affinity and
    /// CPU quota). With one, a single-threaded runtime serves everything.
    #[arg(long, env = "MODELGATE_WORKER_THREADS")]
    worker_threads: Option<std::num::NonZeroUsize>,
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
    /// Certificate chain (PEM) for serving the admin API over TLS; needs
    /// `--admin-tls-key`. Re-read when it changes (new connections get the new one).
    #[arg(
        long,
        value_name = "PEM_FILE",
        env = "MODELGATE_ADMIN_TLS_CERT",
        requires = "admin_tls_key"
    )]
    admin_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--admin-tls-cert`; re-read when it changes.
    #[arg(
        long,
        value_name = "PEM_FILE",
        env = "MODELGATE_ADMIN_TLS_KEY",
        requires = "admin_tls_cert"
    )]
    admin_tls_key: Option<PathBuf>,
    /// A routing table to start with (JSON, gzip accepted), or the folder where the
    /// operator's snapshot Secrets are mounted (`parts`, `table.json.gz.NNN`); re-read
    /// when it changes.
    #[arg(long, env = "MODELGATE_TABLE_FILE")]
    table_file: Option<PathBuf>,
    /// Extra CA bundle (PEM) trusted for HTTPS upstreams.
    #[arg(long, env = "MODELGATE_CA_BUNDLE")]
    ca_bundle: Option<PathBuf>,
    /// Seconds in-flight requests and streams may take to finish on SIGTERM.
    #[arg(long, default_value_t = 30, env = "MODELGATE_DRAIN_SECONDS")]
    drain_seconds: u64,
    /// Length of the rate-limit window of `rpm` and `tpm`, in seconds (60: per minute;
    /// shorter only for tests).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..), env = "MODELGATE_LIMIT_WINDOW_SECONDS")]
    limit_window_seconds: u64,
    /// Divide rpm, tpm and fleet-wide concurrency limits by this number instead of the
    /// gateway count the operator sends (without Redis): e.g. for a sidecar that should
    /// get a fixed share.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), env = "MODELGATE_LIMIT_DIVISOR")]
    limit_divisor: Option<u32>,
    #[command(flatten)]
    limits: LimitArgs,
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
    let threads = modelgate_dataplane::rt::worker_threads(args.worker_threads);
    let runtime = match modelgate_dataplane::rt::build(threads) {
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
    let mut config = Config::new(args.listen);
    config.admin_listen = Some(args.admin_listen);
    config.metrics_listen = Some(args.metrics_listen);
    config.admin_token_file = args.admin_token_file;
    // Both or neither: clap enforces it (`requires`).
    config.admin_tls = args
        .admin_tls_cert
        .zip(args.admin_tls_key)
        .map(|(cert, key)| TlsFiles { cert, key });
    config.ca_bundle = args.ca_bundle;
    config.drain_timeout = Duration::from_secs(args.drain_seconds);
    args.limits.apply(&mut config);
    let client = client::build(config.ca_bundle.as_deref())?;
    let app = App::new(client);
    app.limiter()
        .set_window(Duration::from_secs(args.limit_window_seconds));
    app.limiter().set_divisor(args.limit_divisor);
    let listeners = bind(&config).await?;
    tracing::info!(
        listen = %config.listen,
        admin = ?config.admin_listen,
        admin_tls = config.admin_tls.is_some(),
        "serving"
    );
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
        modelgate_dataplane::server::shutdown_signal().await;
        tracing::info!("shutting down: draining");
        let _ = tx.send(true);
    });
    run(app, &config, listeners, rx).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("modelgate-dataplane").chain(args.iter().copied()))
    }

    #[test]
    fn the_admin_tls_files_come_together() {
        for (given, missing) in [
            ("--admin-tls-cert", "--admin-tls-key"),
            ("--admin-tls-key", "--admin-tls-cert"),
        ] {
            let e = parse(&[given, "tls.pem"]).expect_err("half a pair");
            assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument, "{e}");
            assert!(e.to_string().contains(missing), "{e}");
        }
        let args =
            parse(&["--admin-tls-cert", "tls.crt", "--admin-tls-key", "tls.key"]).expect("both");
        assert_eq!(args.admin_tls_cert, Some(PathBuf::from("tls.crt")));
        assert_eq!(args.admin_tls_key, Some(PathBuf::from("tls.key")));
        let args = parse(&[]).expect("neither");
        assert_eq!((args.admin_tls_cert, args.admin_tls_key), (None, None));
    }

    #[test]
    fn limits_have_defaults_and_refuse_nonsense() {
        use modelgate_dataplane::health;
        use modelgate_dataplane::proxy::DEFAULT_MAX_ANSWER_BYTES;
        use modelgate_dataplane::server::Limits;
        let args = parse(&[]).expect("defaults");
        let mut config = Config::new("127.0.0.1:0".parse().expect("addr"));
        args.limits.apply(&mut config);
        let d = Limits::default();
        assert_eq!(config.limits.max_connections, d.max_connections);
        assert_eq!(config.limits.max_header_bytes, d.max_header_bytes);
        assert_eq!(config.limits.max_headers, d.max_headers);
        assert_eq!(config.limits.header_read_timeout, d.header_read_timeout);
        assert_eq!(config.limits.idle_timeout, d.idle_timeout);
        assert_eq!(config.limits.request_timeout, d.request_timeout);
        assert_eq!(config.max_upstream_answer_bytes, DEFAULT_MAX_ANSWER_BYTES);
        assert_eq!(config.health_check_concurrency, health::DEFAULT_CONCURRENCY);
        let args = parse(&["--request-timeout-seconds", "0", "--max-connections", "3"])
            .expect("unbounded requests");
        args.limits.apply(&mut config);
        assert_eq!(config.limits.request_timeout, None);
        assert_eq!(config.limits.max_connections, 3);
        for bad in [
            ["--max-connections", "0"],
            ["--health-check-concurrency", "0"],
            ["--max-header-bytes", "10"],
            ["--header-read-timeout-seconds", "0"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} accepted");
        }
    }
}
