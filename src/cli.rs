//! The `tandem` command line (DESIGN.md §6): argument parsing, logging setup,
//! and the mapping of each subcommand's outcome to its exit code. Every
//! subcommand is a library function; this file only dispatches.

use crate::config::{self, Config};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "tandem", version, about = "Bidirectional live replication between PostgreSQL and MySQL/MariaDB")]
pub struct Cli {
    /// Config file.
    #[arg(short = 'c', long = "config", global = true, default_value = "/etc/tandem/tandem.toml")]
    pub config: PathBuf,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level or filter (overrides RUST_LOG), e.g. `debug` or `tandem=debug`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the replication service (both directions) until SIGTERM/SIGINT.
    Run,
    /// Create slot, publication, origin, state tables; idempotent.
    Init,
    /// Check config, connectivity and table compatibility.
    Validate {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Drift check of both sides, chunked; `--repair` fixes by ownership.
    Check {
        /// Only this pair.
        #[arg(long)]
        pair: Option<String>,
        /// Make both sides equal by column ownership and the conflict policy.
        #[arg(long)]
        repair: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Copy the rows one side already holds to the other, while `run` streams.
    Backfill {
        /// The pair to copy (repeatable).
        #[arg(long = "pair", required_unless_present = "all")]
        pairs: Vec<String>,
        /// Every pair whose destination table is empty (or whose backfill was interrupted).
        #[arg(long, conflicts_with = "pairs")]
        all: bool,
        /// The side whose rows are copied.
        #[arg(long, value_enum)]
        from: TakeSide,
        /// Rows per chunk.
        #[arg(long, default_value_t = 10_000)]
        chunk_rows: u64,
        /// Throttle: at most this many rows per second.
        #[arg(long)]
        max_rows_per_sec: Option<u64>,
    },
    /// Positions, lag and counts of both directions (also when `run` is not running).
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Conflicts recorded in tandem.conflicts.
    Conflicts {
        #[command(subcommand)]
        action: ConflictsAction,
    },
    /// Changes a destination rejected.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Self-contained demo on throwaway local servers.
    Demo {
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConflictsAction {
    /// Open (manual) conflicts; `--all` also shows decided ones.
    List {
        #[arg(long)]
        pair: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Resolve one conflict by taking one side's current value.
    Resolve {
        /// Conflict id as `tandem conflicts list` prints it (pg:N or my:N).
        id: String,
        #[arg(long, value_enum)]
        take: TakeSide,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// Quarantined changes of this pipeline.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Apply a quarantined change again (after fixing the schema) and remove it.
    Retry { id: String },
    /// Discard a quarantined change.
    Drop { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TakeSide {
    Postgres,
    Mysql,
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("tandem: {e}");
        ExitCode::from(2)
    })
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story on stdout; only warnings go to the log by default.
    let quiet = matches!(cli.command, Command::Demo { .. }) && std::env::var_os("RUST_LOG").is_none();
    init_logging(cli.log_format, cli.log_level.as_deref().or(quiet.then_some("warn")));
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tandem: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run => {
            // First of all, so that a SIGTERM during start-up is a clean stop.
            let token = CancellationToken::new();
            crate::shutdown::on_signals(token.clone());
            let cfg = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let service = match crate::service::start(&cfg, token.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("tandem: {e}");
                    return ExitCode::from(1);
                }
            };
            let code = match crate::run::run(&cfg, token).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "fatal");
                    eprintln!("tandem: {e}");
                    ExitCode::from(1)
                }
            };
            service.finish().await;
            code
        }
        Command::Backfill { pairs, all, from, chunk_rows, max_rows_per_sec } => {
            let cfg = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let from = match from {
                TakeSide::Postgres => config::Side::Postgres,
                TakeSide::Mysql => config::Side::Mysql,
            };
            let opts = crate::backfill::copy::BackfillOptions { pairs, all, from, chunk_rows, max_rows_per_sec, ..Default::default() };
            let mut console = crate::backfill::display::Console::new();
            match crate::backfill::copy::backfill(&cfg, &opts, &mut console).await {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tandem backfill: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Init => {
            let cfg = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match crate::ops::init::init(&cfg).await {
                Ok(report) => {
                    for line in report {
                        println!("{line}");
                    }
                    println!("init: done");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tandem init: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Validate { format } => crate::ops::validate::command(&cli.config, format).await,
        Command::Demo { duration } => crate::ops::demo::command(duration).await,
        Command::Check { pair, repair, format } => crate::ops::check::command(&cli.config, pair, repair, format).await,
        Command::Status { format } => crate::ops::status::command(&cli.config, format).await,
        Command::Quarantine { action } => {
            let cfg = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match action {
                QuarantineAction::List { format } => crate::ops::quarantine::list_command(&cfg, format).await,
                QuarantineAction::Retry { id } => crate::ops::quarantine::retry_command(&cfg, &id).await,
                QuarantineAction::Drop { id } => crate::ops::quarantine::drop_command(&cfg, &id).await,
            }
        }
        Command::Conflicts { action } => {
            let cfg = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match action {
                ConflictsAction::List { pair, all, format } => crate::ops::conflicts::list_command(&cfg, pair.as_deref(), all, format).await,
                ConflictsAction::Resolve { id, take } => {
                    let side = match take {
                        TakeSide::Postgres => crate::config::Side::Postgres,
                        TakeSide::Mysql => crate::config::Side::Mysql,
                    };
                    crate::ops::conflicts::resolve_command(&cfg, &id, side).await
                }
            }
        }
    }
}
