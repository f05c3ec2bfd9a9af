//! The command line: `nestgate [serve]`, `nestgate check-config`, `nestgate keys create|list|revoke`,
//! each with `[--config FILE]`.

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
    /// Print the OpenAPI 3.1 document of /api/v1 (the one GET /openapi.json serves).
    Openapi,
    /// Create, list and revoke API keys, in the configured storage.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Copy an organization's records to the backend its [orgs.ORG.migrate_to] names, then
    /// verify them; rerun to catch up. Exit 0 verified equal, 1 differences, 2 usage or
    /// configuration, 3 interrupted or a backend unavailable (rerun to resume).
    Migrate(MigrateArgs),
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// The organization (an `[orgs.NAME]` with a `migrate_to`).
    org: String,
    /// Read the source and report what would be copied and what cannot be; write nothing.
    #[arg(long, conflicts_with = "verify")]
    dry_run: bool,
    /// Only compare both sides; write nothing.
    #[arg(long)]
    verify: bool,
    /// Match records the target already holds, unknown to the id map, by natural key instead
    /// of refusing to run.
    #[arg(long)]
    adopt_existing: bool,
    /// Also write the report, as JSON, to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Catch up, freeze writes, copy the last changes, verify, and switch the organization to
    /// its target when equal (nothing switches otherwise, and the freeze lifts).
    #[arg(long, conflicts_with_all = ["dry_run", "verify", "rollback", "status"])]
    cutover: bool,
    /// Return a switched organization to its source, until the first write lands on the target.
    #[arg(long, conflicts_with_all = ["dry_run", "verify", "status", "adopt_existing", "report"])]
    rollback: bool,
    /// Where the organization stands: not started, copied, frozen, switched, rolled back.
    #[arg(long, conflicts_with_all = ["dry_run", "verify", "adopt_existing", "report"])]
    status: bool,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once and never stored.
    Create {
        /// The organization (an `[orgs.NAME]` of the configuration).
        #[arg(long)]
        org: String,
        /// Space-separated scopes, e.g. "read:invoices write:invoices".
        #[arg(long)]
        scopes: String,
        /// A label for operators.
        #[arg(long, default_value = "")]
        name: String,
        /// Print one JSON object (client_id, client_secret, org, scopes, …).
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: no new tokens, and its live access tokens are refused (in running
    /// instances within `auth.revocation_poll`).
    Revoke {
        /// The key's client_id (ak_live_…).
        client_id: String,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // The document needs no configuration.
    if let Some(Command::Openapi) = cli.command {
        println!("{}", *crate::http::openapi::DOCUMENT);
        return ExitCode::SUCCESS;
    }
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
        Command::Openapi => ExitCode::SUCCESS,
        Command::Serve => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(serve(settings, source)),
            Err(error) => {
                eprintln!("nestgate: cannot start the runtime: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Keys(command) => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(keys(settings, command)),
            Err(error) => {
                eprintln!("nestgate: cannot start the runtime: {error}");
                ExitCode::FAILURE
            }
        },
        // One thread on one core: a run is a chain of storage round trips, each a hand-off
        // to sqlx's connection thread; with a second runtime thread, every answer also woke the
        // other worker (docs/performance.md, issue 22).
        Command::Migrate(args) => {
            crate::migrate::keep_to_one_core();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(migrate(settings, args)),
                Err(error) => {
                    eprintln!("nestgate: cannot start the runtime: {error}");
                    ExitCode::from(3)
                }
            }
        }
    }
}

/// `nestgate migrate ORG …`: the engine in `crate::migrate`, its report on stdout.
async fn migrate(settings: config::Settings, args: MigrateArgs) -> ExitCode {
    use crate::migrate::{self, Mode, Options};
    crate::telemetry::log::init_stderr("warn");
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("nestgate: stopping after the record in hand (Ctrl-C); rerun to resume");
            migrate::INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let options = Options {
        mode: match (args.dry_run, args.verify) {
            (true, _) => Mode::DryRun,
            (_, true) => Mode::Verify,
            _ => Mode::Copy,
        },
        adopt_existing: args.adopt_existing,
    };
    if args.status {
        return status(&settings, &args.org, args.json).await;
    }
    if args.rollback {
        use crate::cutover::command::{RollbackError, rollback};
        return match rollback(&settings, &args.org).await {
            Ok(message) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("nestgate: {error}");
                ExitCode::from(match error {
                    RollbackError::Refused(_) => 1,
                    RollbackError::Usage(_) => 2,
                    RollbackError::Storage(_) => 3,
                })
            }
        };
    }
    let progress = crate::migrate::progress::for_terminal();
    let outcome = match args.cutover {
        true => {
            crate::cutover::command::cutover(&settings, &args.org, &options, progress.as_ref())
                .await
        }
        false => migrate::run(&settings, &args.org, &options, progress.as_ref()).await,
    };
    let report = match outcome {
        Ok(report) => report,
        Err(migrate::StartError::Usage(message)) => {
            eprintln!("nestgate: {message}");
            return ExitCode::from(2);
        }
        Err(migrate::StartError::Storage(message) | migrate::StartError::Busy(message)) => {
            eprintln!("nestgate: {message}");
            return ExitCode::from(3);
        }
    };
    progress.finish();
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Some(path) = &args.report
        && let Err(error) = std::fs::write(path, &json)
    {
        eprintln!("nestgate: cannot write {}: {error}", path.display());
        print!("{}", report.table());
        return ExitCode::from(2);
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report.table());
    }
    ExitCode::from(report.exit_code())
}

/// `nestgate migrate ORG --status`.
async fn status(settings: &config::Settings, org: &str, json: bool) -> ExitCode {
    match crate::cutover::command::status(settings, org).await {
        Ok(status) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(status) => {
            print!("{}", status.table());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("nestgate: {error}");
            ExitCode::from(match error {
                crate::migrate::StartError::Usage(_) => 2,
                _ => 3,
            })
        }
    }
}

/// `nestgate keys …`: the same operations as `/admin/v1/keys`, straight on the storage.
async fn keys(settings: config::Settings, command: KeysCommand) -> ExitCode {
    let storage = match crate::storage::Storage::connect(
        settings.storage_url.expose(),
        settings.storage_max_connections,
    )
    .await
    {
        Ok(storage) => storage,
        Err(error) => {
            eprintln!("nestgate: {error}");
            return ExitCode::FAILURE;
        }
    };
    let auth = match crate::auth::Auth::build(&settings.auth, storage.pool.clone()).await {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("nestgate: cannot read token state: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match command {
        KeysCommand::Create {
            org,
            scopes,
            name,
            json,
        } => {
            let names: Vec<&str> = scopes.split_ascii_whitespace().collect();
            let scopes = match crate::auth::check_new_key(&settings, &org, &names, &name) {
                Ok(scopes) => scopes,
                Err(problems) => {
                    for p in problems {
                        eprintln!(
                            "nestgate: --{}: {}",
                            p.field.split('[').next().unwrap_or_default(),
                            p.issue
                        );
                    }
                    return ExitCode::from(2);
                }
            };
            auth.keys
                .create(&org, &name, scopes)
                .await
                .map(|(key, secret)| {
                    if json {
                        let mut created = key.to_json();
                        created["client_secret"] = serde_json::json!(secret.expose());
                        println!("{created}");
                    } else {
                        println!("client_id:     {}", key.client_id);
                        println!("client_secret: {}", secret.expose());
                        println!("org:           {}", key.org);
                        println!("scopes:        {}", key.scopes);
                        println!("The secret is shown only this once; store it securely.");
                    }
                    ExitCode::SUCCESS
                })
        }
        KeysCommand::List { org, json } => auth.keys.list(org.as_deref()).await.map(|keys| {
            if json {
                let all: Vec<serde_json::Value> = keys.iter().map(|k| k.to_json()).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                for key in keys {
                    let state = if key.is_live() { "live" } else { "revoked" };
                    println!(
                        "{}  {}  {}  {}  {}",
                        key.client_id, key.org, state, key.scopes, key.name
                    );
                }
            }
            ExitCode::SUCCESS
        }),
        KeysCommand::Revoke { client_id } => {
            auth.revoke_key(&client_id).await.map(|key| match key {
                Some(_) => {
                    println!("{client_id} is revoked");
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("nestgate: no API key has the client_id {client_id}");
                    ExitCode::FAILURE
                }
            })
        }
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("nestgate: storage failed: {error}");
        ExitCode::FAILURE
    })
}

async fn serve(settings: config::Settings, source: Source) -> ExitCode {
    crate::telemetry::init(settings.log_json, &settings.log_level);
    let listen = settings.listen;
    let app = match crate::app::App::build(settings).await {
        Ok(app) => Arc::new(app),
        Err(error) => {
            tracing::error!(%error, "cannot start");
            eprintln!("nestgate: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Kept to the end: `leave` below may use a storage connection that one of these threads
    // opened, and that connection's socket is registered with that thread's runtime.
    let threads = match crate::server::threads::ConnectionThreads::per_core() {
        Ok(threads) => threads,
        Err(error) => {
            eprintln!("nestgate: cannot start the connection threads: {error}");
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
    app.auth.spawn_background();
    app.spawn_readiness();
    app.spawn_routes();
    app.shadow.spawn();
    if let Some(metrics) = &app.metrics {
        crate::telemetry::exporter::spawn_upkeep(metrics.clone());
    }
    if !app.auth.admin_enabled() {
        tracing::info!(
            env = app.settings.auth.admin_token_env,
            "no operator token: the admin API is off (keys can be managed with `nestgate keys`)"
        );
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(addr, config = %source, storage = app.storage.kind, "nestgate listening");
    let leaving = Arc::clone(&app);
    crate::server::serve(app, listener, &threads, crate::server::shutdown_signal()).await;
    // Stopped cleanly: a cutover need not wait for this instance (a killed one drops out of
    // the instances a freeze waits for once its heartbeat is 5 s old).
    leaving.routes.leave().await;
    ExitCode::SUCCESS
}
