//! How `tandem backfill` shows its progress: a bar (rows done / total, rate,
//! ETA) when stderr is a terminal, otherwise one log line every
//! `LOG_EVERY` chunks, so that journald and CI logs stay readable. At the
//! end of each pair the bar is cleared and its result line (`result_line`)
//! goes to the sink the caller gave `Console::new` (the CLI prints it on
//! stdout); nothing here writes to stdout itself.

use super::copy::{PairResult, Report};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Chunks between two log lines when there is no terminal.
pub const LOG_EVERY: u64 = 10;

/// The progress of a backfill on stderr, and each pair's result line to `lines`.
pub struct Console<'a> {
    bar: Option<ProgressBar>,
    tty: bool,
    total: u64,
    first: u64,
    chunks: u64,
    started: Instant,
    lines: &'a mut dyn FnMut(&str),
}

impl<'a> Console<'a> {
    /// A console whose result lines go to `lines`.
    pub fn new(lines: &'a mut dyn FnMut(&str)) -> Console<'a> {
        Console { bar: None, tty: std::io::stderr().is_terminal(), total: 0, first: 0, chunks: 0, started: Instant::now(), lines }
    }
}

/// `done/total rows (pct), rate, ETA` for the log line.
pub fn summary(done: u64, first: u64, total: u64, secs: f64) -> String {
    let rate = if secs > 0.0 { (done.saturating_sub(first)) as f64 / secs } else { 0.0 };
    let pct = if total > 0 { done as f64 * 100.0 / total as f64 } else { 100.0 };
    let eta = if rate > 0.0 { format!("{:.0} s", total.saturating_sub(done) as f64 / rate) } else { "unknown".into() };
    format!("{done}/{total} rows ({pct:.1}%), {rate:.0} rows/s, ETA {eta}")
}

/// What became of a pair, in one line: rows, chunks, time and rate (and
/// where a resumed backfill started), or why it was skipped.
pub fn result_line(r: &PairResult) -> String {
    if let Some(why) = &r.failed {
        return format!("backfill {}: FAILED: {why}", r.pair);
    }
    match &r.skipped {
        Some(why) => format!("backfill {}: skipped ({why})", r.pair),
        None => {
            let rate = if r.seconds > 0.0 { r.rows as f64 / r.seconds } else { 0.0 };
            let resumed = if r.resumed_at > 0 { format!(", resumed after {} rows", r.resumed_at) } else { String::new() };
            format!("backfill {}: {} rows in {} chunks, {:.1} s ({rate:.0} rows/s){resumed}", r.pair, r.rows, r.chunks, r.seconds)
        }
    }
}

impl Report for Console<'_> {
    fn start(&mut self, pair: &str, total: u64, done: u64) {
        self.total = total;
        self.first = done;
        self.chunks = 0;
        self.started = Instant::now();
        if self.tty {
            let bar = ProgressBar::new(total.max(done));
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} rows {per_sec} ETA {eta}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("backfill {pair}"));
            bar.set_position(done);
            self.bar = Some(bar);
        } else {
            tracing::info!(pair, total, done, "backfill started");
        }
    }

    fn chunk(&mut self, pair: &str, done: u64) {
        self.chunks += 1;
        match &self.bar {
            Some(bar) => {
                if done > bar.length().unwrap_or(0) {
                    bar.set_length(done);
                }
                bar.set_position(done);
            }
            None if self.chunks % LOG_EVERY == 0 => {
                tracing::info!(pair, "backfill: {}", summary(done, self.first, self.total, self.started.elapsed().as_secs_f64()));
            }
            None => {}
        }
    }

    fn finish(&mut self, r: &PairResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        (self.lines)(&result_line(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_names_rows_rate_and_eta() {
        assert_eq!(summary(500, 0, 1000, 5.0), "500/1000 rows (50.0%), 100 rows/s, ETA 5 s");
        assert_eq!(summary(0, 0, 0, 0.0), "0/0 rows (100.0%), 0 rows/s, ETA unknown");
    }

    #[test]
    fn the_result_line_names_rows_chunks_rate_and_a_resume() {
        let r = PairResult { pair: "items".into(), rows: 1000, resumed_at: 0, chunks: 3, seconds: 2.0, skipped: None, failed: None };
        assert_eq!(result_line(&r), "backfill items: 1000 rows in 3 chunks, 2.0 s (500 rows/s)");
        let resumed = PairResult { resumed_at: 40, ..r.clone() };
        assert_eq!(result_line(&resumed), "backfill items: 1000 rows in 3 chunks, 2.0 s (500 rows/s), resumed after 40 rows");
        let skipped = PairResult { skipped: Some("the destination table is not empty".into()), ..r };
        assert_eq!(result_line(&skipped), "backfill items: skipped (the destination table is not empty)");
        assert_eq!(result_line(&PairResult::failed("items", "boom".into())), "backfill items: FAILED: boom");
    }
}
