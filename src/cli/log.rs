//! What the `tandem` process writes on stderr: its log (text or JSON lines)
//! and, once, the error a command ends with.
//!
//! Invariants: colour codes only when stderr is a terminal and `NO_COLOR` is
//! unset or empty (no-color.org), so a redirected log or the journal never
//! holds escape sequences; with `--log-format json` every line on stderr is a
//! JSON object, the closing error included; a command's closing error is
//! printed exactly once, by `print_error`, whatever the log level.

use super::LogFormat;
use std::ffi::OsStr;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// The log format chosen on the command line, for `print_error`.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Colour on stderr? Only on a terminal, and never with a non-empty `NO_COLOR`.
pub fn use_ansi(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.map_or(true, OsStr::is_empty)
}

/// Sets up the log on stderr (once per process; later calls change nothing).
pub fn init(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let _ = FORMAT.set(format);
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let ansi = use_ansi(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The closing error line of `command` (e.g. `tandem validate`) as it is
/// printed: `<command>: <error>`, or one JSON object with `command` and `error`.
pub fn error_line(format: LogFormat, command: &str, error: &str) -> String {
    match format {
        LogFormat::Text => format!("{command}: {error}"),
        LogFormat::Json => serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "ERROR",
            "target": "tandem",
            "message": format!("{command} failed"),
            "command": command,
            "error": error,
        })
        .to_string(),
    }
}

/// Prints a command's closing error on stderr in the chosen log format.
pub fn print_error(command: &str, error: impl std::fmt::Display) {
    let format = FORMAT.get().copied().unwrap_or(LogFormat::Text);
    eprintln!("{}", error_line(format, command, &error.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(use_ansi(true, None));
        assert!(use_ansi(true, Some(OsStr::new(""))), "an empty NO_COLOR does not count (no-color.org)");
        assert!(!use_ansi(true, Some(OsStr::new("1"))));
        assert!(!use_ansi(false, None), "a redirected stderr gets no escape codes");
        assert!(!use_ansi(false, Some(OsStr::new("1"))));
    }

    #[test]
    fn a_json_error_line_is_one_object_naming_the_command_and_the_whole_error() {
        let line = error_line(LogFormat::Json, "tandem validate", "invalid config /x.toml:\n  pipeline.name: missing");
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["command"], "tandem validate");
        assert_eq!(v["error"], "invalid config /x.toml:\n  pipeline.name: missing");
        assert_eq!(error_line(LogFormat::Text, "tandem validate", "boom"), "tandem validate: boom");
    }
}
