//! `modelgate-operator`: the operator binary and its command-line tools.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use modelgate_operator::compile::{self, Severity};
use modelgate_operator::manifests::Manifests;
use modelgate_operator::{controller, import, local};

/// jemalloc, as in the data-plane binary: `operator local` serves the data plane in-process.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "modelgate-operator",
    version,
    about = "Modelgate's operator and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile manifests as the operator would and report every diagnostic; exits 1 when
    /// any object would be left out of the routing table.
    Check(CheckArgs),
    /// Convert another gateway's configuration into Modelgate resources.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Serve the gateway locally from manifest files, no cluster needed; reloads on change.
    Local(local::LocalArgs),
    /// Run the operator against the cluster in the kubeconfig (or the in-cluster
    /// configuration): watch the resources, push routing tables, write status.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    config: controller::Config,
    /// Log format: `json` (one object per line) or `text`.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Convert a LiteLLM proxy config (proxy_server_config.yaml).
    Litellm(import::litellm::LitellmArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Manifest files or folders (ModelDeployment, ModelGroupAlias, Secret, RouterSettings).
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// A RouterSettings document (instead of, or besides none in, the manifests).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Namespace of the settings document, where its Secret references point.
    #[arg(long, default_value = compile::DEFAULT_NAMESPACE)]
    settings_namespace: String,
    /// Print the compiled routing table (credentials redacted) as JSON.
    #[arg(long)]
    print_table: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Import(ImportCommand::Litellm(args)) => {
            import::litellm::run(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Local(args) => run_local(args),
        Command::Run(args) => run_operator(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_local(args: local::LocalArgs) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MODELGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let threads = modelgate_dataplane::rt::worker_threads(args.worker_threads);
    let runtime = modelgate_dataplane::rt::build(threads)?;
    runtime.block_on(local::run(args))?;
    Ok(ExitCode::SUCCESS)
}

fn run_operator(args: RunArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if args.log_format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(controller::run(args.config)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!(error = e.metric_label(), "{e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let manifests = Manifests::load(&args.files)?;
    let settings = manifests.settings(args.settings.as_deref())?;
    for note in &manifests.ignored {
        eprintln!("note: {note}");
    }
    let compiled = manifests.compile(&settings, &args.settings_namespace, 1);
    let mut errors = 0;
    for (key, diags) in compiled.diagnostics.iter() {
        for d in diags {
            if d.severity == Severity::Error {
                errors += 1;
            }
            println!("{key}: {d}");
        }
    }
    let table = &compiled.table;
    if let Err(problems) = table.validate() {
        for p in &problems {
            println!("routing table: error: {p}");
        }
        errors += problems.len();
    }
    eprintln!(
        "{} deployments, {} groups, {} aliases compiled into table {}; {errors} errors",
        table.deployments.len(),
        table.groups.len(),
        table.aliases.len(),
        table.version
    );
    if args.print_table {
        println!("{}", serde_json::to_string_pretty(&table.redacted())?);
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
