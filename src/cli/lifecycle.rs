//! The pipeline's lifecycle commands: `tandem teardown` (with its
//! confirmation question), `tandem barrier` and `tandem sequences sync`.
//!
//! Output: results on stdout, one line each; errors on stderr through
//! `log::print_error`. Teardown asks on a terminal unless `--yes`, and
//! without a terminal refuses unless `--yes`: it never drops anything the
//! operator did not confirm.

use super::{fail, load};
use crate::ops;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

/// `tandem teardown`: 0 done (also when there was nothing left), 2 error or refused.
pub async fn teardown(path: &Path, yes: bool, keep_state: bool) -> ExitCode {
    const PREFIX: &str = "tandem teardown";
    let cfg = match load(path, PREFIX) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = ops::teardown::TeardownOptions { keep_state };
    if !yes {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return fail(PREFIX, "refusing without --yes: there is no terminal to confirm on; nothing was dropped");
        }
        eprintln!("tandem teardown drops, for pipeline {}:", cfg.pipeline);
        for line in ops::teardown::plan(&cfg, opts) {
            eprintln!("  {line}");
        }
        eprint!("Type yes to drop them: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if stdin.lock().read_line(&mut answer).is_err() || !ops::teardown::confirmed(&answer) {
            return fail(PREFIX, "not confirmed; nothing was dropped");
        }
    }
    match ops::teardown::teardown(&cfg, opts).await {
        Ok(actions) => {
            for a in actions {
                println!("{a}");
            }
            println!("postgres: REPLICA IDENTITY of the paired tables left as it is (ALTER TABLE … REPLICA IDENTITY DEFAULT undoes it)");
            println!("teardown: done");
            ExitCode::SUCCESS
        }
        Err(e) => fail(PREFIX, e),
    }
}

/// `tandem sequences sync`: one line per generator; 0 done, 2 error.
pub async fn sequences_sync(path: &Path, pair: Option<&str>) -> ExitCode {
    const PREFIX: &str = "tandem sequences sync";
    let cfg = match load(path, PREFIX) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ops::sequences::sync(&cfg, pair).await {
        Ok(moves) => {
            if moves.is_empty() {
                println!("sequences: no key of the selected pairs is generated on either side");
            }
            for m in moves {
                println!("{m}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(PREFIX, e),
    }
}

/// `tandem barrier`: 0 once both directions applied everything committed
/// before the call, 1 on timeout, 2 error.
pub async fn barrier(path: &Path, timeout: std::time::Duration) -> ExitCode {
    const PREFIX: &str = "tandem barrier";
    let cfg = match load(path, PREFIX) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let t0 = std::time::Instant::now();
    let mut b = match ops::barrier::targets(&cfg).await {
        Ok(b) => b,
        Err(e) => return fail(PREFIX, e),
    };
    if b.lease_holder.is_none() {
        eprintln!("tandem barrier: no `tandem run` holds the lease of pipeline {}: the barrier is reached only once one runs", cfg.pipeline);
    }
    for w in &b.waits {
        println!("barrier: waiting until {} position {} is applied on {}", w.direction.source(), w.target, w.direction.source().other());
    }
    match ops::barrier::wait(&cfg, &mut b, timeout).await {
        Ok(reached) => {
            for w in &b.waits {
                println!("{w}");
            }
            if reached {
                println!("barrier: reached after {:.1} s", t0.elapsed().as_secs_f64());
                ExitCode::SUCCESS
            } else {
                println!("barrier: timed out after {:.1} s", t0.elapsed().as_secs_f64());
                ExitCode::from(1)
            }
        }
        Err(e) => fail(PREFIX, e),
    }
}
