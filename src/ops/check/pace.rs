//! `tandem check --max-rows-per-sec`: keeps the drift check's reads under a
//! row rate, so a check of a large table on a busy server stays gentle.
//!
//! The rate is an average since the check began: after each chunk the
//! check sleeps until `rows read / rate` seconds have passed. It never
//! sleeps without a rate, and time comes from tokio's clock, so a test can
//! pause it.

use std::time::Duration;
use tokio::time::Instant;

/// Rows read so far against an optional rate.
#[derive(Debug)]
pub struct Pace {
    rate: Option<u64>,
    started: Instant,
    rows: u64,
}

impl Pace {
    /// `None` or `Some(0)`: no limit.
    pub fn new(max_rows_per_sec: Option<u64>) -> Pace {
        Pace { rate: max_rows_per_sec.filter(|r| *r > 0), started: Instant::now(), rows: 0 }
    }

    /// How long to wait after `rows` more rows were read.
    pub fn wait_after(&mut self, rows: u64) -> Duration {
        self.rows += rows;
        let Some(rate) = self.rate else { return Duration::ZERO };
        let due = Duration::from_secs_f64(self.rows as f64 / rate as f64);
        due.saturating_sub(self.started.elapsed())
    }

    /// Counts `rows` and sleeps as long as the rate asks.
    pub async fn after(&mut self, rows: u64) {
        let wait = self.wait_after(rows);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reads_average_at_most_the_rate_and_never_wait_without_one() {
        let mut free = Pace::new(None);
        assert_eq!(free.wait_after(1_000_000), Duration::ZERO);
        let mut zero = Pace::new(Some(0));
        assert_eq!(zero.wait_after(1_000_000), Duration::ZERO, "0 means no limit");

        let t0 = Instant::now();
        let mut pace = Pace::new(Some(1000));
        for _ in 0..5 {
            pace.after(500).await;
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(2500), "2500 rows at 1000 rows/s");
        // Time spent reading counts toward the rate.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(pace.wait_after(500), Duration::ZERO);
        assert_eq!(pace.wait_after(1500), Duration::from_millis(1000));
    }
}
