//! The command line: `nestgate [serve] [--config FILE]`, `nestgate check-config [--config FILE]`.

use crate::config::{self, Source};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "nestgate",
    version,
    about = "The InvoiceNests API over pluggable invoicing backends"
)]
pub struct Cli {
    /// The configuration file (default: config/nestgate.toml if present, else the embedded default).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the gateway (the default).
    Serve,
    /// Validate the configuration without starting; every problem is named by its TOML path.
    CheckConfig,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let source = Source::resolve(cli.config.as_deref());
    let settings = match config::settings(&source) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("nestgate: invalid configuration in {source}:\n{error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            println!("{source}: configuration is valid");
            ExitCode::SUCCESS
        }
        Command::Serve => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("nestgate: cannot start the runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(settings, source))
        }
    }
}

async fn serve(settings: config::Settings, source: Source) -> ExitCode {
    crate::telemetry::init(settings.log_json, &settings.log_level);
    let listen = settings.listen;
    if settings.dev_org_header {
        tracing::warn!(
            "server.dev_org_header is on: X-Nestgate-Org grants every scope without a token (development only)"
        );
    }
    let app = match crate::app::App::build(settings).await {
        Ok(app) => Arc::new(app),
        Err(error) => {
            tracing::error!(%error, "cannot start");
            eprintln!("nestgate: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match crate::server::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, %listen, "cannot listen");
            eprintln!("nestgate: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    app.idempotency
        .spawn_expiry(std::time::Duration::from_secs(15 * 60));
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(addr, config = %source, storage = app.storage.kind, "nestgate listening");
    crate::server::serve(app, listener, crate::server::shutdown_signal()).await;
    ExitCode::SUCCESS
}
