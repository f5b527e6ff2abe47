//! `tandem-bench`: end-to-end benchmark of tandem against the databases'
//! native replication, on throwaway local servers it starts itself.
//!
//! Run: `cargo build --release --bins && target/release/tandem-bench` (the
//! `tandem` binary must sit next to this one; it runs as a subprocess:
//! `tandem init`, then `tandem run`). `--direction` picks what runs (default
//! both, one after the other, each with its own fresh servers):
//!
//! - `pg-to-mysql`: tandem replicates database `bench_tandem` of a source
//!   Postgres cluster to MariaDB; the reference is Postgres native logical
//!   replication (publication → subscription) of database `bench_native` on
//!   the same source cluster to a second cluster.
//! - `mysql-to-pg`: tandem replicates database `bench` of a source MariaDB to
//!   Postgres; the reference is MariaDB's own row-based replication of
//!   database `bench_native` on the same source server to a second MariaDB
//!   (a replica with a different server_id and default, single-threaded
//!   apply; see `NativeMariaDb`).
//!
//! The systems run one after the other, never at the same time. Workloads and
//! measurement: `workload.rs`; output: `report.rs`.
//!
//! Durability is the same for every server and both systems. By default
//! nothing is flushed to disk (this machine kind's fsync takes ~5 ms, which
//! would turn W2 into a disk benchmark): Postgres fsync and full_page_writes
//! off but synchronous_commit on (a commit writes its WAL at once; with it
//! off, walsenders see a commit only after the WAL writer's 200 ms cycle,
//! which adds up to ~250 ms to every lag); MariaDB
//! innodb_flush_log_at_trx_commit=2, sync_binlog=0, no doublewrite; the
//! subscription keeps its default synchronous_commit=off. `--durable` flushes
//! everything (fsync on, innodb flush at every commit, sync_binlog=1,
//! subscription synchronous_commit=on).
//!
//! `tandem run` always runs both directions: in `pg-to-mysql` it also tails
//! MariaDB's binlog (and drops its own writes there), in `mysql-to-pg` it
//! also decodes Postgres' WAL through its slot (and drops its own writes);
//! that cost is part of its CPU and of the servers'.

#[path = "e2e/procstat.rs"]
mod procstat;
#[path = "e2e/report.rs"]
mod report;
#[path = "e2e/sql.rs"]
mod sql;
#[path = "e2e/systems.rs"]
mod systems;
#[path = "e2e/workload.rs"]
mod workload;

use clap::{Parser, ValueEnum};
use report::{Goals, Report};
use sql::{Dialect, Endpoint, Res};
use std::process::ExitCode;
use std::time::Duration;
use systems::{NativeMariaDb, NativePg, Tandem};
use tandem::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions};
use workload::{run_system, Scenario, Settings, SystemResult};

#[derive(Debug, Parser)]
#[command(name = "tandem-bench", about = "End-to-end benchmark: tandem vs native replication on throwaway servers")]
struct Args {
    /// Rows inserted by W1 (one transaction).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Single-row updates of W2 (each its own transaction, each a distinct row).
    #[arg(long, default_value_t = 100_000)]
    updates: u64,
    /// Concurrent W2 client connections.
    #[arg(long, default_value_t = 4)]
    clients: u64,
    /// Only tandem, no native replication reference.
    #[arg(long)]
    skip_native: bool,
    /// Print JSON on stdout instead of the table (one document per direction;
    /// an array of them with `--direction both`).
    #[arg(long)]
    json: bool,
    /// fsync/synchronous commit on every server (see the file's doc).
    #[arg(long)]
    durable: bool,
    /// tandem's `[apply] max_batch_delay_ms`.
    #[arg(long, default_value_t = 100)]
    batch_delay_ms: u64,
    /// tandem's `--log-level` (its logs go to `tandem-bench-logs/` next to this binary).
    #[arg(long, default_value = "info")]
    tandem_log_level: String,
    /// Per-workload timeout in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    /// Print a per-second timeline of every workload (stderr; in the JSON with --json).
    #[arg(long)]
    timeline: bool,
    /// Which way data flows (`both`: one after the other, each on fresh servers).
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    direction: Direction,
}

/// Which way data flows; each has its own servers and reference system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Direction {
    /// Postgres → MariaDB; reference: Postgres logical replication to a second Postgres.
    #[value(alias = "pg-to-mariadb")]
    PgToMysql,
    /// MariaDB → Postgres; reference: MariaDB row-based replication to a second MariaDB.
    #[value(alias = "mariadb-to-pg")]
    MysqlToPg,
    /// `pg-to-mysql`, then `mysql-to-pg`.
    Both,
}

impl Direction {
    /// The single directions this one runs, in order.
    fn each(self) -> &'static [Direction] {
        match self {
            Direction::PgToMysql => &[Direction::PgToMysql],
            Direction::MysqlToPg => &[Direction::MysqlToPg],
            Direction::Both => &[Direction::PgToMysql, Direction::MysqlToPg],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Direction::PgToMysql => "postgres → mariadb (reference: postgres logical replication → postgres)",
            Direction::MysqlToPg => "mariadb → postgres (reference: mariadb row-based replication → mariadb)",
            Direction::Both => "both directions",
        }
    }

    /// Directory name of its logs.
    fn slug(self) -> &'static str {
        match self {
            Direction::PgToMysql => "pg-to-mysql",
            Direction::MysqlToPg => "mysql-to-pg",
            Direction::Both => "both",
        }
    }

    /// tandem's targets in this direction.
    fn goals(self) -> Goals {
        match self {
            Direction::MysqlToPg => Goals { w1_rows_per_s: 100_000.0, w2_lag_p99_ms: 1_000.0 },
            Direction::PgToMysql | Direction::Both => Goals { w1_rows_per_s: 80_000.0, w2_lag_p99_ms: 1_000.0 },
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tandem-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(reports) => {
            if args.json {
                println!("{}", Report::json(&reports, args.timeline));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every requested direction, one after the other; a report for each. The
/// text tables are printed as each direction finishes.
async fn run(args: &Args) -> Res<Vec<Report>> {
    if args.updates > args.rows {
        return Err(format!("--updates {} exceeds --rows {}: every update must hit a distinct W1 row", args.updates, args.rows));
    }
    if args.rows == 0 || args.updates == 0 || args.clients == 0 {
        return Err("--rows, --updates and --clients must be at least 1".into());
    }
    let bin = systems::tandem_binary()?;
    let logs = systems::logs_dir()?;
    let settings = Settings {
        rows: args.rows,
        updates: args.updates,
        clients: args.clients,
        timeout: Duration::from_secs(args.timeout_s),
    };
    let mut reports = Vec::new();
    for &direction in args.direction.each() {
        let dir_logs = logs.join(direction.slug());
        std::fs::create_dir_all(&dir_logs).map_err(|e| format!("create {}: {e}", dir_logs.display()))?;
        let load_average_start = procstat::load_average();
        let systems = run_direction(direction, args, &settings, bin.clone(), &dir_logs).await?;
        let report = report_of(direction, args, systems, load_average_start, &dir_logs);
        if !args.json {
            if args.timeline {
                eprintln!("{}", report.timelines());
            }
            println!("{}", report.text());
        }
        reports.push(report);
    }
    Ok(reports)
}

fn report_of(direction: Direction, args: &Args, systems: Vec<SystemResult>, load_average_start: Option<f64>, logs: &std::path::Path) -> Report {
    let durability = if args.durable {
        "durable (fsync, synchronous_commit on; innodb flush at commit, sync_binlog=1)"
    } else {
        "no disk flushes (postgres fsync off, synchronous_commit on; innodb_flush_log_at_trx_commit=2, sync_binlog=0)"
    };
    let mut report = Report {
        direction: direction.label().into(),
        rows: args.rows,
        updates: args.updates,
        clients: args.clients,
        durability: durability.into(),
        batch_delay_ms: args.batch_delay_ms,
        load_average_start,
        load_average_end: procstat::load_average(),
        logs: logs.display().to_string(),
        systems,
        targets: Vec::new(),
    };
    report.judge(direction.goals());
    report
}

/// Starts the direction's servers, runs tandem, then the reference; the
/// servers are stopped and removed when they go out of scope (and at exit).
async fn run_direction(direction: Direction, args: &Args, st: &Settings, bin: std::path::PathBuf, logs: &std::path::Path) -> Res<Vec<SystemResult>> {
    match direction {
        Direction::PgToMysql => pg_to_mysql(args, st, bin, logs).await,
        Direction::MysqlToPg => mysql_to_pg(args, st, bin, logs).await,
        Direction::Both => Err("run_direction: `both` is not a single direction".into()),
    }
}

fn testbed_err(e: tandem::testbed::TestbedError) -> String {
    e.to_string()
}

/// The server options of every direction: same durability everywhere.
fn server_options(args: &Args) -> (PgOptions, MariaOptions) {
    // Without synchronous_commit, a commit's WAL waits for the WAL writer
    // (wal_writer_delay, 200 ms) before any walsender may decode it.
    let settings = vec![("synchronous_commit".to_string(), "on".to_string())];
    let pg_opts = PgOptions { durable: args.durable, settings, ..PgOptions::default() };
    let my_opts = MariaOptions { durable: args.durable, ..MariaOptions::default() };
    (pg_opts, my_opts)
}

/// Postgres → MariaDB; reference: a subscription on a second cluster.
async fn pg_to_mysql(args: &Args, st: &Settings, bin: std::path::PathBuf, logs: &std::path::Path) -> Res<Vec<SystemResult>> {
    let err = testbed_err;
    let mut results = Vec::new();
    let (pg_opts, my_opts) = server_options(args);
    eprintln!("postgres → mariadb: starting servers (durable: {})", args.durable);
    let (source, maria, subscriber) = tokio::join!(PgCluster::start(pg_opts.clone()), MariaDb::start(my_opts), async {
        if args.skip_native {
            None
        } else {
            Some(PgCluster::start(pg_opts.clone()).await)
        }
    });
    let (source, maria) = (source.map_err(err)?, maria.map_err(err)?);
    let subscriber = subscriber.transpose().map_err(err)?;

    source.create_database("bench_tandem").await.map_err(err)?;
    maria.create_database("bench").await.map_err(err)?;
    let sc = Scenario {
        source: Endpoint { dialect: Dialect::Postgres, port: source.port(), db: "bench_tandem".into(), server_pid: source.pid() },
        dest: Endpoint { dialect: Dialect::MariaDb, port: maria.port(), db: "bench".into(), server_pid: maria.pid() },
    };
    let mut tandem = Tandem::new(bin, sc.source.clone(), sc.dest.clone(), args.batch_delay_ms, args.tandem_log_level.clone(), logs.to_path_buf());
    results.push(run_system(&mut tandem, &sc, st).await?);

    if let Some(subscriber) = subscriber {
        source.create_database("bench_native").await.map_err(err)?;
        subscriber.create_database("bench_native").await.map_err(err)?;
        let sc = Scenario {
            source: Endpoint { dialect: Dialect::Postgres, port: source.port(), db: "bench_native".into(), server_pid: source.pid() },
            dest: Endpoint { dialect: Dialect::Postgres, port: subscriber.port(), db: "bench_native".into(), server_pid: subscriber.pid() },
        };
        let mut native = NativePg { source: sc.source.clone(), dest: sc.dest.clone(), synchronous_commit: args.durable };
        results.push(run_system(&mut native, &sc, st).await?);
    }
    Ok(results)
}

/// MariaDB → Postgres; reference: a second MariaDB replicating from the source.
async fn mysql_to_pg(args: &Args, st: &Settings, bin: std::path::PathBuf, logs: &std::path::Path) -> Res<Vec<SystemResult>> {
    let err = testbed_err;
    let mut results = Vec::new();
    let (pg_opts, my_opts) = server_options(args);
    eprintln!("mariadb → postgres: starting servers (durable: {})", args.durable);
    let replica_opts = MariaOptions { server_id: 2, ..my_opts.clone() };
    let (source, pg, replica) = tokio::join!(MariaDb::start(my_opts), PgCluster::start(pg_opts), async {
        if args.skip_native {
            None
        } else {
            Some(MariaDb::start(replica_opts).await)
        }
    });
    let (source, pg) = (source.map_err(err)?, pg.map_err(err)?);
    let replica = replica.transpose().map_err(err)?;

    source.create_database("bench").await.map_err(err)?;
    pg.create_database("bench_tandem").await.map_err(err)?;
    let sc = Scenario {
        source: Endpoint { dialect: Dialect::MariaDb, port: source.port(), db: "bench".into(), server_pid: source.pid() },
        dest: Endpoint { dialect: Dialect::Postgres, port: pg.port(), db: "bench_tandem".into(), server_pid: pg.pid() },
    };
    let mut tandem = Tandem::new(bin, sc.dest.clone(), sc.source.clone(), args.batch_delay_ms, args.tandem_log_level.clone(), logs.to_path_buf());
    results.push(run_system(&mut tandem, &sc, st).await?);

    if let Some(replica) = replica {
        source.create_database("bench_native").await.map_err(err)?;
        replica.create_database("bench_native").await.map_err(err)?;
        let sc = Scenario {
            source: Endpoint { dialect: Dialect::MariaDb, port: source.port(), db: "bench_native".into(), server_pid: source.pid() },
            dest: Endpoint { dialect: Dialect::MariaDb, port: replica.port(), db: "bench_native".into(), server_pid: replica.pid() },
        };
        let mut native = NativeMariaDb::new(sc.source.clone(), sc.dest.clone());
        results.push(run_system(&mut native, &sc, st).await?);
    }
    Ok(results)
}
