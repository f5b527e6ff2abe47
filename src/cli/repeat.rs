//! The commands an operator repeats: `tandem conflicts list|resolve` and
//! `tandem quarantine list|retry|drop`, for one id or, with `--pair P
//! --all`, every entry of a pair; lists cut at `--limit`.
//!
//! Output: one line per entry handled on stdout; errors on stderr through
//! `log::print_error`. Exit codes: 0 when everything asked for was done, 2
//! when anything was not (an unknown id or pair, a database error, a
//! retried change still rejected, a conflict that could not be resolved) —
//! a bulk command still handles every other entry first.

use super::{fail, load, log, ConflictsAction, OutputFormat, QuarantineAction, Target};
use crate::config::Side;
use crate::ops;
use std::path::Path;
use std::process::ExitCode;

/// What a `Target` names.
enum Selected<'a> {
    One(&'a str),
    Pair(&'a str),
}

fn selected(t: &Target) -> Selected<'_> {
    match (&t.id, &t.pair) {
        (Some(id), _) => Selected::One(id),
        (None, Some(pair)) => Selected::Pair(pair),
        // clap requires an id or --pair with --all; an empty pair matches nothing.
        (None, None) => Selected::Pair(""),
    }
}

/// The first `limit` entries (all without a limit).
fn cut<T>(mut entries: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(n) = limit {
        entries.truncate(n);
    }
    entries
}

/// `tandem conflicts list|resolve`.
pub async fn conflicts(path: &Path, action: ConflictsAction) -> ExitCode {
    let cfg = match load(path, "tandem") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match action {
        ConflictsAction::List { pair, all, format, limit } => match ops::conflicts::list(&cfg, pair.as_deref(), all).await {
            Ok(entries) => {
                let entries = cut(entries, limit);
                match format {
                    OutputFormat::Json => println!("{}", serde_json::json!({ "conflicts": entries })),
                    OutputFormat::Text => print!("{}", ops::conflicts::render_text(&entries, all)),
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail("tandem conflicts list", e),
        },
        ConflictsAction::Resolve { target, take } => {
            const PREFIX: &str = "tandem conflicts resolve";
            let take = Side::from(take);
            match selected(&target) {
                Selected::One(id) => match ops::conflicts::resolve(&cfg, id, take).await {
                    Ok(v) => {
                        println!("conflict {id} resolved: both sides now hold the {take} value {v}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(PREFIX, e),
                },
                Selected::Pair(pair) => match ops::conflicts::resolve_pair(&cfg, pair, take).await {
                    Ok(outcomes) => {
                        let mut failed = 0;
                        for (id, r) in &outcomes {
                            match r {
                                Ok(v) => println!("conflict {id} resolved: both sides now hold the {take} value {v}"),
                                Err(e) => {
                                    failed += 1;
                                    log::print_error(PREFIX, format!("conflict {id}: {e}"));
                                }
                            }
                        }
                        println!("pair {pair}: {} conflict(s) resolved, {failed} not", outcomes.len() - failed);
                        if failed == 0 {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(2)
                        }
                    }
                    Err(e) => fail(PREFIX, e),
                },
            }
        }
    }
}

/// `tandem quarantine list|retry|drop`.
pub async fn quarantine(path: &Path, action: QuarantineAction) -> ExitCode {
    let cfg = match load(path, "tandem") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match action {
        QuarantineAction::List { format, limit } => match ops::quarantine::list(&cfg).await {
            Ok(entries) => {
                let entries = cut(entries, limit);
                match format {
                    OutputFormat::Json => println!("{}", serde_json::json!({ "quarantine": entries })),
                    OutputFormat::Text => print!("{}", ops::quarantine::render_text(&entries)),
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail("tandem quarantine list", e),
        },
        QuarantineAction::Retry { target } => {
            const PREFIX: &str = "tandem quarantine retry";
            match selected(&target) {
                Selected::One(id) => match ops::quarantine::retry(&cfg, id).await {
                    Ok(None) => {
                        println!("{id}: applied and removed from the quarantine");
                        ExitCode::SUCCESS
                    }
                    Ok(Some(err)) => fail(PREFIX, format!("{id} is still rejected: {err}")),
                    Err(e) => fail(PREFIX, e),
                },
                Selected::Pair(pair) => match ops::quarantine::retry_pair(&cfg, pair).await {
                    Ok(outcomes) => {
                        let mut rejected = 0;
                        for (id, still) in &outcomes {
                            match still {
                                None => println!("{id}: applied and removed from the quarantine"),
                                Some(err) => {
                                    rejected += 1;
                                    log::print_error(PREFIX, format!("{id} is still rejected: {err}"));
                                }
                            }
                        }
                        println!("pair {pair}: {} applied, {rejected} still rejected", outcomes.len() - rejected);
                        if rejected == 0 {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(2)
                        }
                    }
                    Err(e) => fail(PREFIX, e),
                },
            }
        }
        QuarantineAction::Drop { target } => {
            const PREFIX: &str = "tandem quarantine drop";
            match selected(&target) {
                Selected::One(id) => match ops::quarantine::drop_entry(&cfg, id).await {
                    Ok(true) => {
                        println!("{id}: dropped");
                        ExitCode::SUCCESS
                    }
                    Ok(false) => fail(PREFIX, format!("no quarantined change {id}")),
                    Err(e) => fail(PREFIX, e),
                },
                Selected::Pair(pair) => match ops::quarantine::drop_pair(&cfg, pair).await {
                    Ok(dropped) => {
                        for id in &dropped {
                            println!("{id}: dropped");
                        }
                        println!("pair {pair}: {} dropped", dropped.len());
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(PREFIX, e),
                },
            }
        }
    }
}
