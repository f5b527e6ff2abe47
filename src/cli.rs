//! The `tandem` command line (DESIGN.md §6): argument parsing, logging setup,
//! and the mapping of each subcommand's outcome to its output and exit code.
//!
//! Every subcommand is a library function returning a typed report or
//! result; this file alone chooses text or JSON, prints (results on stdout,
//! `tandem <command>: <error>` on stderr) and decides the exit code. Nothing
//! but `main.rs` imports it: the library never depends on the CLI.

mod lifecycle;
mod log;
mod repeat;

use crate::config::{self, Config, Side};
use crate::ops;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The exit codes of every command, for `tandem --help`.
const EXIT_CODES: &str = "\
Exit codes:
  run          0 clean stop (SIGTERM/SIGINT), 1 fatal error, 2 config does not load
  validate     0 all checks hold, 1 problems found, 2 could not run
  check        0 in sync (with --repair: all repaired), 1 drift found, 2 error
  status       0, 2 error; with --check: 0 ready, 1 not ready, 2 could not tell
  init, backfill, conflicts, quarantine, demo, sequences
               0 done, 2 error (quarantine retry: also when a change is still rejected)
  teardown     0 done, 2 error, not confirmed, or refused while `tandem run` holds the lease
  barrier      0 reached, 1 timed out, 2 error
  any command  2 when its arguments or its config are wrong";

#[derive(Debug, Parser)]
#[command(name = "tandem", version, about = "Bidirectional live replication between PostgreSQL and MySQL/MariaDB", after_help = EXIT_CODES)]
pub struct Cli {
    /// Config file.
    #[arg(short = 'c', long = "config", global = true, env = "TANDEM_CONFIG", default_value = "/etc/tandem/tandem.toml")]
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
    #[command(after_help = "Exit codes: 0 clean stop (SIGTERM/SIGINT), 1 fatal error, 2 the config does not load (not worth a restart).")]
    Run,
    /// Create slot, publication, origin, state tables; idempotent.
    #[command(after_help = "Exit codes: 0 done, 2 error.")]
    Init {
        /// Print every statement init runs on each side, and run nothing (connects to nothing).
        #[arg(long)]
        print_sql: bool,
        /// Wait up to this many seconds for both databases to accept a login first
        /// (for containers and units that start with their databases).
        #[arg(long, value_name = "SECONDS", conflicts_with = "print_sql")]
        wait: Option<u64>,
    },
    /// Check config, connectivity and table compatibility.
    #[command(after_help = "Exit codes: 0 all checks hold, 1 problems found (with --offline: the config has problems), 2 could not run.")]
    Validate {
        /// Report format on stdout.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Check only the config and the files it names (password, TLS); connect to nothing.
        #[arg(long)]
        offline: bool,
    },
    /// Drift check of both sides, chunked; `--repair` fixes by ownership.
    #[command(after_help = "Exit codes: 0 in sync (with --repair: everything repaired), 1 drift found, 2 error.")]
    Check {
        /// Only this pair.
        #[arg(long)]
        pair: Option<String>,
        /// Make both sides equal by column ownership and the conflict policy.
        #[arg(long)]
        repair: bool,
        /// Report format on stdout.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Keys per compared chunk.
        #[arg(long, default_value_t = 10_000)]
        chunk_rows: u64,
        /// Throttle: compare at most this many rows per second on average.
        #[arg(long)]
        max_rows_per_sec: Option<u64>,
    },
    /// Copy the rows one side already holds to the other, while `run` streams.
    #[command(after_help = "Exit codes: 0 done, 2 error.")]
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
    #[command(after_help = "Exit codes: 0, 2 when a database could not be read; with --check: 0 ready, 1 not ready, 2 could not tell.")]
    Status {
        /// Report format on stdout.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Only ask the running service whether it is ready (`/health/ready`):
        /// exit 0 ready, 1 not ready (or not running), 2 could not tell.
        #[arg(long)]
        check: bool,
    },
    /// One row's story: its values on both sides column by column with each
    /// column's owner, and the conflict, quarantine and parked entries of its key.
    #[command(after_help = "Exit codes: 0 the row is equal on both sides (or absent on both), 1 it differs, 2 error.")]
    Explain {
        /// The pair the row belongs to.
        #[arg(long)]
        pair: String,
        /// The key, one value per key column in the pair's key order (repeat for a composite key).
        #[arg(long = "key", required = true)]
        key: Vec<String>,
        /// Report format on stdout.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Conflicts recorded in tandem.conflicts.
    #[command(after_help = "Exit codes: 0 done, 2 error.")]
    Conflicts {
        #[command(subcommand)]
        action: ConflictsAction,
    },
    /// Changes a destination rejected.
    #[command(after_help = "Exit codes: 0 done, 2 error (retry: also when a change is still rejected).")]
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Drop the slot, publication, replication origins and (unless --keep-state) the state of this pipeline.
    #[command(after_help = "Exit codes: 0 done (also when nothing was left to drop), 2 error, not confirmed, or refused while a `tandem run` holds the pipeline lease (nothing dropped).")]
    Teardown {
        /// Do not ask for confirmation (required without a terminal).
        #[arg(long)]
        yes: bool,
        /// Keep the state schema/database (checkpoints, conflicts, quarantine).
        #[arg(long)]
        keep_state: bool,
    },
    /// Wait until everything committed on either side before the call is applied on the other (the cut-over point).
    #[command(after_help = "Exit codes: 0 reached, 1 timed out, 2 error.")]
    Barrier {
        /// Give up (exit 1) after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Key sequences of both sides (Postgres sequences, MySQL AUTO_INCREMENT).
    #[command(after_help = "Exit codes: 0 done, 2 error.")]
    Sequences {
        #[command(subcommand)]
        action: SequencesAction,
    },
    /// Self-contained demo on throwaway local servers.
    #[command(after_help = "Exit codes: 0 done, 2 error.")]
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
        /// Only this pair's conflicts.
        #[arg(long)]
        pair: Option<String>,
        /// Decided and resolved conflicts too, not only the open ones.
        #[arg(long)]
        all: bool,
        /// Listing format on stdout.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Show at most this many (the oldest first).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Resolve one conflict, or every open one of a pair, by taking one side's current value.
    Resolve {
        #[command(flatten)]
        target: Target,
        /// The side whose current value both sides keep.
        #[arg(long, value_enum)]
        take: TakeSide,
    },
}

#[derive(Debug, Subcommand)]
pub enum SequencesAction {
    /// Move each pair's Postgres sequence and MySQL AUTO_INCREMENT past the highest key on either side.
    Sync {
        /// Only this pair.
        #[arg(long)]
        pair: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// Quarantined changes of this pipeline.
    List {
        /// Listing format on stdout.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Show at most this many (each database's oldest first).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Apply a quarantined change (or every one of a pair) again, after fixing the schema, and remove it.
    Retry {
        #[command(flatten)]
        target: Target,
    },
    /// Discard a quarantined change, or every one of a pair.
    Drop {
        #[command(flatten)]
        target: Target,
    },
}

/// One entry by id, or `--pair P --all`: every entry of that pair.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The id as the list command prints it (pg:N or my:N).
    #[arg(required_unless_present = "all", conflicts_with_all = ["pair", "all"])]
    pub id: Option<String>,
    /// With --all: the pair whose entries are all handled.
    #[arg(long, requires = "all")]
    pub pair: Option<String>,
    /// Every entry of --pair, oldest first.
    #[arg(long, requires = "pair")]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TakeSide {
    Postgres,
    Mysql,
}

impl From<TakeSide> for Side {
    fn from(t: TakeSide) -> Side {
        match t {
            TakeSide::Postgres => Side::Postgres,
            TakeSide::Mysql => Side::Mysql,
        }
    }
}

/// Prints `<prefix>: <error>` on stderr (JSON with `--log-format json`); exit code 2.
pub(crate) fn fail(prefix: &str, e: impl std::fmt::Display) -> ExitCode {
    log::print_error(prefix, e);
    ExitCode::from(2)
}

/// The config, or exit code 2 after saying why under `prefix`.
pub(crate) fn load(path: &Path, prefix: &str) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| fail(prefix, e))
}

/// A report as pretty JSON on stdout; 2 if it does not serialize.
fn print_pretty_json(prefix: &str, report: &impl serde::Serialize) -> Result<(), ExitCode> {
    match serde_json::to_string_pretty(report) {
        Ok(s) => {
            println!("{s}");
            Ok(())
        }
        Err(e) => Err(fail(prefix, e)),
    }
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story on stdout; only warnings go to the log by default.
    let quiet = matches!(cli.command, Command::Demo { .. }) && std::env::var_os("RUST_LOG").is_none();
    log::init(cli.log_format, cli.log_level.as_deref().or(quiet.then_some("warn")));
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail("tandem", format!("cannot start the runtime: {e}")),
    };
    rt.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    let path = cli.config.as_path();
    match cli.command {
        Command::Run => run(path).await,
        Command::Init { print_sql: true, .. } => init_print_sql(path),
        Command::Init { print_sql: false, wait } => init(path, wait.map(Duration::from_secs)).await,
        Command::Validate { format, offline: true } => validate_offline(path, format),
        Command::Validate { format, offline: false } => validate(path, format).await,
        Command::Check { pair, repair, format, chunk_rows, max_rows_per_sec } => {
            check(path, ops::check::CheckOptions { pair, repair, chunk_rows, max_rows_per_sec, ..Default::default() }, format).await
        }
        Command::Backfill { pairs, all, from, chunk_rows, max_rows_per_sec } => {
            let opts = ops::backfill::copy::BackfillOptions { pairs, all, from: from.into(), chunk_rows, max_rows_per_sec, ..Default::default() };
            backfill(path, &opts).await
        }
        Command::Explain { pair, key, format } => explain(path, &pair, &key, format).await,
        Command::Status { format, check: true } => status_check(path, format).await,
        Command::Status { format, check: false } => status(path, format).await,
        Command::Conflicts { action } => repeat::conflicts(path, action).await,
        Command::Quarantine { action } => repeat::quarantine(path, action).await,
        Command::Teardown { yes, keep_state } => lifecycle::teardown(path, yes, keep_state).await,
        Command::Barrier { timeout } => lifecycle::barrier(path, Duration::from_secs(timeout)).await,
        Command::Sequences { action: SequencesAction::Sync { pair } } => lifecycle::sequences_sync(path, pair.as_deref()).await,
        Command::Demo { duration } => demo(duration.map(Duration::from_secs)).await,
    }
}

/// `tandem run`: 0 on a clean stop (SIGTERM/SIGINT), 1 fatal error, 2 no config.
async fn run(path: &Path) -> ExitCode {
    // First of all, so that a SIGTERM during start-up is a clean stop.
    let token = CancellationToken::new();
    crate::shutdown::on_signals(token.clone());
    let cfg = match load(path, "tandem") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let service = match crate::service::start(&cfg, token.clone()).await {
        Ok(s) => s,
        Err(e) => {
            log::print_error("tandem", e);
            return ExitCode::from(1);
        }
    };
    let code = match crate::run::run(&cfg, token).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The one report of a fatal error (supervise logs only which direction).
            log::print_error("tandem", e);
            ExitCode::from(1)
        }
    };
    service.finish().await;
    code
}

/// `tandem init`: what it did, one line per action; 0, or 2.
async fn init(path: &Path, wait: Option<Duration>) -> ExitCode {
    let cfg = match load(path, "tandem") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(within) = wait {
        if let Err(e) = ops::wait::databases(&cfg, within, |line| eprintln!("tandem init: {line}")).await {
            return fail("tandem init", e);
        }
    }
    match ops::init::init(&cfg).await {
        Ok(report) => {
            for line in report {
                println!("{line}");
            }
            println!("init: done");
            ExitCode::SUCCESS
        }
        Err(e) => fail("tandem init", e),
    }
}

/// `tandem init --print-sql`: the setup as SQL on stdout; 0, or 2 when the config does not load.
fn init_print_sql(path: &Path) -> ExitCode {
    match load(path, "tandem init") {
        Ok(cfg) => {
            print!("{}", ops::init::render_sql(&ops::init::setup_sql(&cfg)));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `tandem backfill`: progress on stderr, one result line per pair on
/// stdout as each pair ends; 0 done, 2 error (also when any pair failed:
/// the others were still copied).
async fn backfill(path: &Path, opts: &ops::backfill::copy::BackfillOptions) -> ExitCode {
    let cfg = match load(path, "tandem") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut print = |line: &str| println!("{line}");
    let mut console = ops::backfill::display::Console::new(&mut print);
    match ops::backfill::copy::backfill(&cfg, opts, &mut console).await {
        Ok(results) if results.iter().any(|r| r.failed.is_some()) => {
            let failed: Vec<&str> = results.iter().filter(|r| r.failed.is_some()).map(|r| r.pair.as_str()).collect();
            eprintln!("tandem backfill: {} of {} pairs failed: {}", failed.len(), results.len(), failed.join(", "));
            ExitCode::from(2)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail("tandem backfill", e),
    }
}

/// `tandem validate`: 0 all checks hold, 1 problems found, 2 could not run.
async fn validate(path: &Path, format: OutputFormat) -> ExitCode {
    const PREFIX: &str = "tandem validate";
    let cfg = match load(path, PREFIX) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let found = match ops::validate::report(&cfg).await {
        Ok(found) => found,
        Err(e) => return fail(PREFIX, e),
    };
    let echo = ops::validate::echo_mechanism(&cfg).await;
    match format {
        OutputFormat::Json => println!("{}", ops::validate::render_json(&found, &echo)),
        OutputFormat::Text => print!("{}", ops::validate::render_text(&found, &echo)),
    }
    if found.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `tandem validate --offline`: 0 the config is good, 1 it has problems,
/// 2 it cannot be read.
fn validate_offline(path: &Path, format: OutputFormat) -> ExitCode {
    let found = match ops::validate::offline::report(path) {
        Ok(found) => found,
        Err(e) => return fail("tandem validate", e),
    };
    let echo = "not checked (--offline)";
    match format {
        OutputFormat::Json => println!("{}", ops::validate::render_json(&found, echo)),
        OutputFormat::Text => print!("{}", ops::validate::render_text(&found, echo)),
    }
    if found.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `tandem check`: 0 in sync (with `--repair`: all repaired), 1 drift left, 2 could not run.
async fn check(path: &Path, opts: ops::check::CheckOptions, format: OutputFormat) -> ExitCode {
    const PREFIX: &str = "tandem check";
    let cfg = match load(path, PREFIX) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let report = match ops::check::check(&cfg, &opts).await {
        Ok(r) => r,
        Err(e) => return fail(PREFIX, e),
    };
    match format {
        OutputFormat::Json => {
            if let Err(code) = print_pretty_json(PREFIX, &report) {
                return code;
            }
        }
        OutputFormat::Text => print!("{}", ops::check::render_text(&report)),
    }
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `tandem status`: 0, or 2 when a database could not be read (each problem
/// is also repeated on stderr).
async fn status(path: &Path, format: OutputFormat) -> ExitCode {
    const PREFIX: &str = "tandem status";
    let cfg = match load(path, PREFIX) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let report = ops::status::status(&cfg).await;
    match format {
        OutputFormat::Json => {
            if let Err(code) = print_pretty_json(PREFIX, &report) {
                return code;
            }
        }
        OutputFormat::Text => print!("{}", ops::status::render_text(&report)),
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        for e in &report.errors {
            log::print_error(PREFIX, e);
        }
        ExitCode::from(2)
    }
}

/// `tandem explain`: 0 equal, 1 different, 2 error.
async fn explain(path: &Path, pair: &str, key: &[String], format: OutputFormat) -> ExitCode {
    const PREFIX: &str = "tandem explain";
    let cfg = match load(path, PREFIX) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let story = match ops::explain::explain(&cfg, pair, key).await {
        Ok(s) => s,
        Err(e) => return fail(PREFIX, e),
    };
    match format {
        OutputFormat::Json => {
            if let Err(code) = print_pretty_json(PREFIX, &story) {
                return code;
            }
        }
        OutputFormat::Text => print!("{}", ops::explain::render_text(&story)),
    }
    ExitCode::from(if story.equal { 0 } else { 1 })
}

/// `tandem status --check`: 0 ready, 1 not ready, 2 could not tell.
async fn status_check(path: &Path, format: OutputFormat) -> ExitCode {
    const PREFIX: &str = "tandem status --check";
    let cfg = match load(path, PREFIX) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let r = ops::status::readiness(&cfg).await;
    if let OutputFormat::Json = format {
        if let Err(code) = print_pretty_json(PREFIX, &r) {
            return code;
        }
    }
    let (code, word, why) = match &r {
        ops::status::Readiness::Yes(why) => (0, "ready", why),
        ops::status::Readiness::No(why) => (1, "not ready", why),
        ops::status::Readiness::Unknown(why) => (2, "unknown", why),
    };
    if let OutputFormat::Text = format {
        println!("{word}: {why}");
    }
    ExitCode::from(code)
}

/// `tandem demo`: its story line by line on stdout as it happens; 0 at the
/// end, 2 when something stopped it.
async fn demo(duration: Option<Duration>) -> ExitCode {
    match ops::demo::demo(duration, &mut |line| println!("{line}")).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail("tandem demo", e),
    }
}

#[cfg(test)]
mod tests;
