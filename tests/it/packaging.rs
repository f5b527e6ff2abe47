//! What ships: the Debian package built by `cargo deb` (file list, conffile,
//! postinst), the systemd unit as `systemd-analyze verify` sees it, and the
//! stripped release binary.
//!
//! Tests that need an outside tool (cargo-deb, systemd-analyze, dpkg-deb)
//! print why they skip when it is absent and pass; where the tool exists they
//! run it for real. None of them builds tandem again: the .deb is made with
//! `cargo deb --no-build` from the binary this test run already built.

use super::util::tandem_bin;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (where Cargo.toml is).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An executable named `name` on PATH (or in /usr/sbin, /sbin), if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("config/systemd/tandem.service")).expect("config/systemd/tandem.service")
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify_without_a_warning() {
    let Some(analyze) = find_tool("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    let unit = unit_text();
    assert!(unit.contains("ExecStart=/usr/bin/tandem run"), "the unit runs the packaged /usr/bin/tandem");
    // verify checks that ExecStart's binary exists: point it at the one built here.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tandem.service");
    std::fs::write(&copy, unit.replace("/usr/bin/tandem", &tandem_bin().display().to_string())).unwrap();
    let out = Command::new(analyze).arg("verify").arg(&copy).output().expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {stderr}");
    // Unknown keys and bad values are only warnings (exit 0): any output fails.
    assert!(stderr.trim().is_empty() && out.stdout.is_empty(), "systemd-analyze verify warns:\n{stderr}");
}

#[test]
fn a_config_that_does_not_load_exits_with_the_status_the_unit_does_not_restart() {
    let unit = unit_text();
    let prevent: Vec<i32> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RestartPreventExitStatus="))
        .flat_map(|v| v.split_whitespace().filter_map(|s| s.parse().ok()).collect::<Vec<_>>())
        .collect();
    assert!(unit.lines().any(|l| l.trim() == "Restart=on-failure"), "the unit restarts on failure");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[pipeline]\nname = \"Bad Name\"\n").unwrap();
    for path in [cfg.as_path(), Path::new("/nonexistent/tandem.toml")] {
        let out = Command::new(tandem_bin()).arg("run").arg("-c").arg(path).output().unwrap();
        let code = out.status.code().expect("an exit code");
        assert!(prevent.contains(&code), "tandem run with {} exits {code}; the unit prevents restarts only on {prevent:?}", path.display());
    }
    assert!(
        unit.lines().any(|l| l.trim().starts_with("Documentation=file:/usr/share/doc/tandem/README.md")),
        "Documentation= names the README the package installs"
    );
    assert!(unit.contains("LoadCredential=") && unit.contains("/run/credentials/tandem.service/"), "LoadCredential= is documented");
}

/// Names of an ELF64 little-endian file's sections (reads only the headers).
fn elf_section_names(path: &Path) -> std::io::Result<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let mut head = [0u8; 64];
    f.read_exact(&mut head)?;
    assert_eq!(&head[..4], b"\x7fELF", "{} is not an ELF file", path.display());
    assert_eq!((head[4], head[5]), (2, 1), "ELF64 little-endian expected");
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum, shstrndx) = (u64_at(&head, 0x28), u16_at(&head, 0x3a), u16_at(&head, 0x3c), u16_at(&head, 0x3e));
    let mut table = vec![0u8; (shentsize * shnum) as usize];
    f.seek(SeekFrom::Start(shoff))?;
    f.read_exact(&mut table)?;
    let header = |i: u64| &table[(i * shentsize) as usize..((i + 1) * shentsize) as usize];
    let strtab = header(shstrndx);
    let mut names = vec![0u8; u64_at(strtab, 0x20) as usize];
    f.seek(SeekFrom::Start(u64_at(strtab, 0x18)))?;
    f.read_exact(&mut names)?;
    Ok((0..shnum)
        .map(|i| {
            let start = u32::from_le_bytes(header(i)[..4].try_into().unwrap()) as usize;
            let end = names[start..].iter().position(|&b| b == 0).map_or(names.len(), |n| start + n);
            String::from_utf8_lossy(&names[start..end]).into_owned()
        })
        .collect())
}

#[test]
fn the_release_binary_carries_no_debug_info() {
    let bin = tandem_bin();
    let sections = elf_section_names(&bin).expect("read the binary's section headers");
    assert!(sections.iter().any(|s| s == ".text"), "section names were read: {sections:?}");
    let debug: Vec<&String> = sections.iter().filter(|s| s.starts_with(".debug_")).collect();
    if bin.parent().and_then(Path::file_name) != Some("release".as_ref()) {
        // A debug build keeps its debug info: this is what the release check would see.
        assert!(!debug.is_empty(), "the section reader finds debug info where there is some: {sections:?}");
        eprintln!("only the section reader checked: {} is not a release build (run with --release)", bin.display());
        return;
    }
    assert!(debug.is_empty(), "the release binary carries debug info: {debug:?}");
}

/// Runs a command, panicking with its stderr when it fails; returns stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cargo deb` is installed (as a cargo subcommand)?
fn cargo_deb() -> Option<Command> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let works = Command::new(&cargo).args(["deb", "--version"]).output().is_ok_and(|o| o.status.success());
    works.then(|| {
        let mut c = Command::new(cargo);
        c.arg("deb");
        c
    })
}

#[test]
fn cargo_deb_packages_binary_unit_conffile_docs_and_a_postinst_that_starts_nothing() {
    let Some(mut deb) = cargo_deb() else {
        eprintln!("skipped: cargo-deb is not installed (cargo install cargo-deb, or .ci/install-deps)");
        return;
    };
    let Some(dpkg_deb) = find_tool("dpkg-deb") else {
        eprintln!("skipped: dpkg-deb is not installed");
        return;
    };
    let bin = tandem_bin();
    let (Some(profile_dir), Some(target_dir)) = (bin.parent(), bin.parent().and_then(Path::parent)) else {
        panic!("unexpected binary path {}", bin.display())
    };
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => "release",
        Some("debug") => "dev",
        other => {
            eprintln!("skipped: the binary was built under an unknown profile directory {other:?}");
            return;
        }
    };
    let out = tempfile::tempdir().unwrap();
    // --no-build: package the binary this test run built; --fast: light compression.
    run_ok(
        deb.args(["--no-build", "--fast", "--quiet", "--profile", profile, "--output"])
            .arg(out.path())
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(repo()),
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(out.path()).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
    assert_eq!(debs.len(), 1, "one .deb: {debs:?}");
    let pkg = &debs[0];

    let listing = run_ok(Command::new(&dpkg_deb).arg("--contents").arg(pkg));
    // `dpkg-deb --contents` lines: mode owner/group size date time path (`./usr/...` or `usr/...`).
    let entry = |path: &str| {
        listing.lines().find(|l| l.split_whitespace().last().map(|p| p.trim_start_matches("./").trim_start_matches('/')) == Some(path)).map(str::to_string)
    };
    let binary = entry("usr/bin/tandem").unwrap_or_else(|| panic!("no /usr/bin/tandem in:\n{listing}"));
    assert!(binary.starts_with("-rwxr-xr-x ") && (binary.contains(" root/root ") || binary.contains(" 0/0 ")), "{binary}");
    let unit = entry("lib/systemd/system/tandem.service").or_else(|| entry("usr/lib/systemd/system/tandem.service"));
    assert!(unit.is_some(), "no systemd unit in:\n{listing}");
    let config = entry("etc/tandem/tandem.toml").unwrap_or_else(|| panic!("no /etc/tandem/tandem.toml in:\n{listing}"));
    assert!(config.starts_with("-rw-r----- "), "the config is not world-readable: {config}");
    for doc in [
        "usr/share/doc/tandem/README.md",
        "usr/share/doc/tandem/copyright",
        "usr/share/doc/tandem/examples/tandem-alerts.yml",
        "usr/share/doc/tandem/examples/tandem-dashboard.json",
    ] {
        assert!(entry(doc).is_some(), "no {doc} in:\n{listing}");
    }

    let control = out.path().join("control");
    run_ok(Command::new(&dpkg_deb).arg("--control").arg(pkg).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("a conffiles list");
    assert!(conffiles.lines().any(|l| l == "/etc/tandem/tandem.toml"), "conffiles: {conffiles}");
    let fields = std::fs::read_to_string(control.join("control")).unwrap();
    assert!(fields.lines().any(|l| l.starts_with("Depends:") && l.contains("adduser")), "control: {fields}");
    let tar = format!("'{}' --fsys-tarfile '{}' | tar -xO --wildcards '*usr/share/doc/tandem/copyright'", dpkg_deb.display(), pkg.display());
    let copyright = run_ok(Command::new("/bin/sh").arg("-c").arg(tar));
    assert!(copyright.contains("Apache License") && copyright.contains("Version 2.0"), "the copyright file carries the LICENSE text");

    let postinst = std::fs::read_to_string(control.join("postinst")).expect("a postinst");
    postinst_creates_the_user_and_starts_nothing(&control.join("postinst"), &postinst);
}

/// Runs the package's postinst with every command that would change the
/// system replaced by a stub that logs its arguments: a first install
/// (`configure`) and an upgrade (`configure 0.0.1`).
fn postinst_creates_the_user_and_starts_nothing(script: &Path, text: &str) {
    assert!(!text.contains("#DEBHELPER#"), "cargo-deb filled in the generated part");
    let stubs = tempfile::tempdir().unwrap();
    let log = stubs.path().join("calls.log");
    let stub = |name: &str, code: i32| {
        let p = stubs.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\necho \"{name} $*\" >> '{}'\nexit {code}\n", log.display())).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    // getent: no such user yet; dpkg-statoverride: no override.
    for (name, code) in [("getent", 2), ("dpkg-statoverride", 1)] {
        stub(name, code);
    }
    for name in ["adduser", "useradd", "addgroup", "groupadd", "chown", "chmod", "systemctl", "deb-systemd-invoke", "invoke-rc.d", "update-rc.d"] {
        stub(name, 0);
    }
    // deb-systemd-helper: a unit never installed or enabled before (its
    // questions answer no), every other subcommand succeeds.
    let helper = stubs.path().join("deb-systemd-helper");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\necho \"deb-systemd-helper $*\" >> '{}'\ncase \" $* \" in *' debian-installed '*|*' was-enabled '*|*' is-enabled '*) exit 1;; esac\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", stubs.path().display());
    for args in [&["configure"][..], &["configure", "0.0.1"][..]] {
        let _ = std::fs::remove_file(&log);
        let out = Command::new("/bin/sh").arg(script).args(args).env("PATH", &path).env("DPKG_MAINTSCRIPT_PACKAGE", "tandem").output().unwrap();
        assert!(out.status.success(), "postinst {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        let adduser = calls.lines().find(|l| l.starts_with("adduser ")).unwrap_or_else(|| panic!("postinst {args:?} made no user: {calls}"));
        assert!(adduser.contains("--system") && adduser.ends_with(" tandem"), "{adduser}");
        assert!(calls.contains("chown root:tandem /etc/tandem/tandem.toml"), "the service's group may read its config: {calls}");
        for line in calls.lines().filter(|l| l.starts_with("systemctl") || l.starts_with("deb-systemd-invoke") || l.starts_with("invoke-rc.d")) {
            let starts = line.split_whitespace().any(|w| w == "start" || w == "restart" || w == "enable");
            assert!(!starts, "postinst {args:?} starts or enables something: {line}");
        }
        let enables = calls.lines().any(|l| l.starts_with("deb-systemd-helper") && l.split_whitespace().any(|w| w == "enable"));
        assert!(!enables, "postinst {args:?} enables the unit: {calls}");
    }
    // The generated part runs only under a booted systemd (absent here): read it too.
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let invokes = line.contains("deb-systemd-invoke") || line.contains("systemctl");
        assert!(!(invokes && (line.contains(" start ") || line.contains("enable"))), "postinst would start or enable: {line}");
    }
}
