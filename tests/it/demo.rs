//! `tandem demo` runs on its own throwaway servers, shows rows moving both
//! ways, an ownership rule and a decided conflict, and exits 0.

use super::util::tandem_bin;

#[test]
fn demo_shows_both_directions_an_ownership_rule_and_a_decided_conflict() {
    let out = std::process::Command::new(tandem_bin()).args(["demo", "--duration", "5"]).output().expect("spawn tandem demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "MariaDB customers now",
        "PostgreSQL customers now",
        "Barbara Liskov",
        "was not propagated",
        "recorded conflict",
        "→ mysql wins",
        "Both sides now have the same",
    ] {
        assert!(stdout.contains(needle), "demo output lacks {needle:?}:\n{stdout}");
    }
}
