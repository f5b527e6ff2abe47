//! `tandem-bench-ops`: the operator tools at scale, on throwaway local
//! servers: `tandem backfill` of a 1,000,000-row table each way (rows/s), and
//! `tandem check` of a 1,000,000-row pair, first equal, then with 10 differing
//! rows (seconds and bytes read over the network, against the table's size).
//!
//! Run: `cargo build --release --bins && target/release/tandem-bench-ops`
//! (the `tandem` binary must sit next to this one). `--rows N` changes the
//! table size. The pipeline (`tandem run`) runs during the backfills, as it
//! must; the servers are the test harness's (nothing flushed to disk).

use clap::Parser;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tandem::testbed::{MariaDb, MariaOptions, PgCluster, PgOptions};

#[derive(Debug, Parser)]
#[command(name = "tandem-bench-ops", about = "Backfill and check at scale on throwaway servers")]
struct Args {
    /// Rows of the benchmark table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows per backfill chunk.
    #[arg(long, default_value_t = 10_000)]
    chunk_rows: u64,
}

type Res<T> = Result<T, String>;

fn tandem_bin() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name("tandem")
}

fn tandem(args: &[&str], cfg: &Path) -> Res<(String, Duration)> {
    let t0 = Instant::now();
    let out = Command::new(tandem_bin()).args(args).arg("-c").arg(cfg).output().map_err(|e| format!("spawn tandem: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) | Some(1) if args[0] == "check" => Ok((String::from_utf8_lossy(&out.stdout).into_owned(), t0.elapsed())),
        Some(0) => Ok((text, t0.elapsed())),
        other => Err(format!("tandem {} exited {other:?}:\n{text}", args.join(" "))),
    }
}

struct Bench {
    pg: PgCluster,
    my: MariaDb,
    dir: tempfile::TempDir,
}

impl Bench {
    /// A fresh database pair `name` holding `items` on both sides, `rows` on `seeded`.
    async fn pair(&self, name: &str, rows: u64, seeded: &[&str]) -> Res<PathBuf> {
        let e = |e: tandem::testbed::TestbedError| e.to_string();
        self.pg.create_database(name).await.map_err(e)?;
        self.my.create_database(name).await.map_err(e)?;
        let pg = self.pg.connect(name).await.map_err(e)?;
        let mut my = self.my.connect(name).await.map_err(e)?;
        pg.batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, account int, sku text, qty int, price numeric(12,2), note text, at timestamp(6))")
            .await
            .map_err(|e| e.to_string())?;
        my.query_drop("CREATE TABLE items (id BIGINT PRIMARY KEY, account INT, sku TEXT, qty INT, price DECIMAL(12,2), note TEXT, at DATETIME(6))")
            .await
            .map_err(|e| e.to_string())?;
        if seeded.contains(&"postgres") {
            pg.batch_execute(&format!(
                "INSERT INTO items SELECT g, g % 1000, 'sku-' || g, g % 7, (g % 10000) / 100.0, repeat('n', (g % 60)::int), '2024-01-01'::timestamp + g * interval '1 second' \
                 FROM generate_series(1, {rows}) g"
            ))
            .await
            .map_err(|e| e.to_string())?;
        }
        if seeded.contains(&"mysql") {
            my.query_drop(format!(
                "INSERT INTO items SELECT seq, seq % 1000, CONCAT('sku-', seq), seq % 7, (seq % 10000) / 100, REPEAT('n', seq % 60), '2024-01-01' + INTERVAL seq SECOND \
                 FROM seq_1_to_{rows}"
            ))
            .await
            .map_err(|e| e.to_string())?;
        }
        let cfg = self.dir.path().join(format!("{name}.toml"));
        let text = format!(
            "[pipeline]\nname = \"{name}\"\n\n[postgres]\nurl = \"{}\"\ntls = \"disable\"\n\n[mysql]\nurl = \"{}\"\nserver_id = {}\ntls = \"disable\"\n\n\
             [[pairs]]\nname = \"items\"\npostgres = \"public.items\"\nmysql = \"{name}.items\"\n",
            self.pg.url(name),
            self.my.url(name),
            9000 + name.len() as u32
        );
        std::fs::write(&cfg, text).map_err(|e| e.to_string())?;
        tandem(&["init"], &cfg)?;
        Ok(cfg)
    }

    fn run(&self, cfg: &Path, name: &str) -> Res<std::process::Child> {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}-run.log"))).map_err(|e| e.to_string())?;
        Command::new(tandem_bin()).args(["run", "-c"]).arg(cfg).stdout(Stdio::null()).stderr(log).spawn().map_err(|e| e.to_string())
    }
}

fn stop(mut child: std::process::Child) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
}

async fn backfill(b: &Bench, args: &Args, from: &str) -> Res<()> {
    let name = format!("bf_{from}");
    let cfg = b.pair(&name, args.rows, &[from]).await?;
    let run = b.run(&cfg, &name)?;
    let chunk = args.chunk_rows.to_string();
    let result = tandem(&["backfill", "--pair", "items", "--from", from, "--chunk-rows", &chunk], &cfg);
    stop(run);
    let (out, took) = result?;
    let rate = args.rows as f64 / took.as_secs_f64();
    println!("backfill from {from}: {} rows in {:.1} s = {rate:.0} rows/s (goal >= 50000)  [{}]", args.rows, took.as_secs_f64(), out.lines().last().unwrap_or_default());
    Ok(())
}

async fn check(b: &Bench, args: &Args) -> Res<()> {
    let cfg = b.pair("chk", args.rows, &["postgres", "mysql"]).await?;
    let size: i64 = {
        let pg = b.pg.connect("chk").await.map_err(|e| e.to_string())?;
        pg.query_one("SELECT pg_table_size('items')", &[]).await.map_err(|e| e.to_string())?.get(0)
    };
    for (label, changes) in [("equal", 0), ("10 differing rows", 10)] {
        if changes > 0 {
            let mut my = b.my.connect("chk").await.map_err(|e| e.to_string())?;
            let ids: Vec<String> = (1..=changes).map(|i| (i * args.rows / (changes + 1)).to_string()).collect();
            my.query_drop(format!("SET sql_log_bin = 0; UPDATE items SET note = 'drift' WHERE id IN ({})", ids.join(","))).await.map_err(|e| e.to_string())?;
        }
        let (out, took) = tandem(&["check", "--format", "json"], &cfg)?;
        let json: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("check output: {e}: {out}"))?;
        let bytes = json["bytes_read"].as_u64().unwrap_or(0);
        let found = json["pairs"][0]["different"].as_array().map_or(0, |a| a.len());
        println!(
            "check, {} rows, {label}: {:.1} s (goal <= 20 s), {bytes} bytes read = {:.2}% of the {size}-byte table (goal < 5%), {found} rows reported",
            args.rows,
            took.as_secs_f64(),
            bytes as f64 * 100.0 / size.max(1) as f64
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result: Res<()> = async {
        let e = |e: tandem::testbed::TestbedError| e.to_string();
        let b = Bench {
            pg: PgCluster::start(PgOptions::default()).await.map_err(e)?,
            my: MariaDb::start(MariaOptions::default()).await.map_err(e)?,
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        };
        backfill(&b, &args, "postgres").await?;
        backfill(&b, &args, "mysql").await?;
        check(&b, &args).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandem-bench-ops: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
