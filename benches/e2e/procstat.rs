//! CPU time and memory of processes, read from `/proc`, and percentiles.
//!
//! CPU of one process is utime+stime of `/proc/<pid>/stat` (all its threads)
//! divided by `sysconf(_SC_CLK_TCK)`. CPU of a server is the sum over its live
//! process tree of utime+stime+cutime+cstime: a backend that exited and was
//! reaped has its time in its parent's c-times, so differences between two
//! snapshots count every process that ran in between exactly once.

use std::collections::HashMap;

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (ppid, utime, stime, cutime, cstime) in ticks, from a `/proc/<pid>/stat` line.
fn parse_stat(text: &str) -> Option<(u32, u64, u64, u64, u64)> {
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    Some((num(4)? as u32, num(14)?, num(15)?, num(16)?, num(17)?))
}

/// CPU seconds (user + system) used so far by the process `pid` itself.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, u, s, _, _) = parse_stat(&text)?;
    Some((u + s) as f64 / clock_ticks())
}

/// CPU seconds used so far by `root` and all its descendants, including
/// those already reaped.
pub fn tree_cpu_s(root: u32) -> Option<f64> {
    let mut procs: HashMap<u32, (u32, u64)> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some((ppid, u, s, cu, cs)) = parse_stat(&text) {
            procs.insert(pid, (ppid, u + s + cu + cs));
        }
    }
    procs.get(&root)?;
    let mut total = 0u64;
    for (&pid, &(_, ticks)) in &procs {
        let mut p = pid;
        // Walk up to the root (bounded, in case of a cycle through reused pids).
        for _ in 0..64 {
            if p == root {
                total += ticks;
                break;
            }
            match procs.get(&p) {
                Some(&(ppid, _)) if ppid != 0 && ppid != p => p = ppid,
                _ => break,
            }
        }
    }
    Some(total as f64 / clock_ticks())
}

/// Peak resident set size (VmHWM) of a live process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The 1-minute load average, to judge how quiet the machine was.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// CPU seconds of the three parties of one replication setup.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuSnapshot {
    /// The replicator's own process (tandem); None when it has none (native).
    pub replicator_s: Option<f64>,
    pub source_server_s: Option<f64>,
    pub dest_server_s: Option<f64>,
}

impl CpuSnapshot {
    pub fn take(replicator: Option<u32>, source_server: Option<u32>, dest_server: Option<u32>) -> CpuSnapshot {
        CpuSnapshot {
            replicator_s: replicator.and_then(process_cpu_s),
            source_server_s: source_server.and_then(tree_cpu_s),
            dest_server_s: dest_server.and_then(tree_cpu_s),
        }
    }

    /// `later - self`, field by field.
    pub fn until(&self, later: &CpuSnapshot) -> CpuSnapshot {
        let d = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        CpuSnapshot {
            replicator_s: d(self.replicator_s, later.replicator_s),
            source_server_s: d(self.source_server_s, later.source_server_s),
            dest_server_s: d(self.dest_server_s, later.dest_server_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_the_name() {
        let line = "42 (my (odd) proc) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(line), Some((7, 11, 22, 33, 44)));
    }

    #[test]
    fn percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn own_process_is_measurable() {
        let me = std::process::id();
        assert!(process_cpu_s(me).is_some());
        assert!(tree_cpu_s(me).unwrap() >= process_cpu_s(me).unwrap() - 0.05);
        assert!(peak_rss_mib(me).unwrap() > 0.0);
    }
}
