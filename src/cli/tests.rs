//! The command line's own contract: every flag and argument says what it is
//! for, `--help` lists the exit codes, and `--pair P --all` is accepted
//! where an id is.

use super::*;
use clap::CommandFactory;

/// Every argument of `cmd` and its subcommands without a help text, as `path: --name`.
fn without_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let builtin = matches!(arg.get_id().as_str(), "help" | "version");
        if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path}: {}", arg.get_id()));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_about().is_none() && sub.get_name() != "help" {
            out.push(format!("{path} {}: (no about)", sub.get_name()));
        }
        without_help(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_flag_argument_and_command_has_a_help_text() {
    let mut missing = Vec::new();
    without_help(&Cli::command(), "tandem", &mut missing);
    assert!(missing.is_empty(), "without a help text: {missing:#?}");
}

#[test]
fn help_lists_the_exit_codes_of_every_command() {
    let mut cmd = Cli::command();
    let help = cmd.render_help().to_string();
    assert!(help.contains("Exit codes:"), "{help}");
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = sub.get_name();
        assert!(help.contains(name), "tandem --help names the exit codes of {name}");
        let sub_help = sub.clone().render_help().to_string();
        assert!(sub_help.contains("Exit codes:"), "tandem {name} --help lists its exit codes:\n{sub_help}");
    }
}

#[test]
fn retry_drop_and_resolve_take_an_id_or_pair_with_all_but_not_both_nor_neither() {
    let parse = |args: &[&str]| Cli::try_parse_from([&["tandem"], args].concat());
    for ok in [
        &["quarantine", "retry", "pg:3"][..],
        &["quarantine", "retry", "--pair", "customers", "--all"],
        &["quarantine", "drop", "--pair", "customers", "--all"],
        &["conflicts", "resolve", "my:4", "--take", "postgres"],
        &["conflicts", "resolve", "--pair", "customers", "--all", "--take", "mysql"],
        &["conflicts", "list", "--limit", "5"],
        &["quarantine", "list", "--limit", "5"],
        &["check", "--chunk-rows", "500", "--max-rows-per-sec", "1000"],
        &["validate", "--offline"],
        &["init", "--print-sql"],
        &["teardown", "--yes", "--keep-state"],
        &["barrier", "--timeout", "5"],
        &["sequences", "sync", "--pair", "customers"],
        &["sequences", "sync"],
    ] {
        assert!(parse(ok).is_ok(), "{ok:?}: {}", parse(ok).unwrap_err());
    }
    for bad in [
        &["quarantine", "retry"][..],
        &["quarantine", "retry", "--all"],
        &["quarantine", "retry", "--pair", "customers"],
        &["quarantine", "drop", "pg:3", "--pair", "customers", "--all"],
        &["conflicts", "resolve", "--all", "--take", "mysql"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} must be refused");
    }
    match parse(&["quarantine", "drop", "--pair", "customers", "--all"]).unwrap().command {
        Command::Quarantine { action: QuarantineAction::Drop { target } } => {
            assert_eq!((target.id, target.pair.as_deref(), target.all), (None, Some("customers"), true));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_config_path_comes_from_tandem_config_unless_c_is_given() {
    let cmd = Cli::command();
    let config = cmd.get_arguments().find(|a| a.get_id() == "config").expect("-c");
    assert_eq!(config.get_env().and_then(|e| e.to_str()), Some("TANDEM_CONFIG"));
    let cli = Cli::try_parse_from(["tandem", "-c", "/x.toml", "init"]).unwrap();
    assert_eq!(cli.config, PathBuf::from("/x.toml"));
}
