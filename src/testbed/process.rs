//! Child-process plumbing shared by the testbed servers: per-server
//! directories, the spawner thread, the process-wide registry and cleanup.
//!
//! Invariants:
//! - Every directory this process creates is named
//!   `<temp>/tandem-testbed-<our pid>-<n>` and is in the registry until it is
//!   removed; the `atexit` handler SIGKILLs every registered server, reaps it
//!   and removes every registered directory.
//! - Server children are forked by one thread that lives as long as the
//!   process, with `PR_SET_PDEATHSIG=SIGKILL` (which fires when the *forking
//!   thread* exits, not the process): a test thread or tokio runtime ending
//!   never takes a server with it, but the process dying always does.
//! - A registered pid is cleared right after the child is reaped, so the exit
//!   handler never signals a recycled pid.
//! - Leftovers of dead processes (`tandem-testbed-<pid>-*` whose pid is gone)
//!   are removed once, before the first directory is created; their servers
//!   are killed only if `/proc/<pid>/cmdline` names that directory.

use super::{file_tail, TestbedError, ERROR_LOG_LINES, STOP_TIMEOUT};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

const DIR_PREFIX: &str = "tandem-testbed-";

/// Which server a directory belongs to; decides the stop signal and the
/// Postgres shared-memory cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerKind {
    Postgres,
    MariaDb,
}

impl ServerKind {
    fn label(self) -> &'static str {
        match self {
            ServerKind::Postgres => "postgres",
            ServerKind::MariaDb => "mariadb",
        }
    }
}

struct Entry {
    dir: PathBuf,
    pid: Option<i32>,
    kind: Option<ServerKind>,
}

static REGISTRY: Mutex<BTreeMap<u64, Entry>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_DIR: AtomicU64 = AtomicU64::new(1);
static INIT: Once = Once::new();

fn registry() -> MutexGuard<'static, BTreeMap<u64, Entry>> {
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn set_registered_pid(id: u64, pid: Option<i32>) {
    if let Some(entry) = registry().get_mut(&id) {
        entry.pid = pid;
    }
}

/// Once per process: clean up after dead runs and install the exit handler.
fn init() {
    INIT.call_once(|| {
        remove_leftovers();
        // SAFETY: registering a plain `extern "C" fn` without captured state.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
    });
}

fn register(dir: PathBuf, kind: Option<ServerKind>) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    registry().insert(id, Entry { dir, pid: None, kind });
    id
}

/// Create `<temp>/tandem-testbed-<pid>-<n>` (a fresh, empty directory).
fn create_numbered_dir() -> io::Result<PathBuf> {
    init();
    let pid = std::process::id();
    loop {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("{DIR_PREFIX}{pid}-{n}"));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A per-process directory for config files and other scratch output,
/// `<temp>/tandem-testbed-<pid>-scratch`, removed at process exit.
pub fn scratch_dir() -> Result<&'static Path, TestbedError> {
    static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = SCRATCH.get() {
        return Ok(path);
    }
    init();
    let path = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-scratch", std::process::id()));
    fs::create_dir_all(&path)
        .map_err(|e| TestbedError::new("testbed", format!("cannot create {}: {e}", path.display())))?;
    Ok(SCRATCH.get_or_init(|| {
        register(path.clone(), None);
        path
    }))
}

// ---------------------------------------------------------------- spawning

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// The sender to the long-lived spawner thread, started on first use.
fn spawner() -> io::Result<mpsc::Sender<SpawnJob>> {
    static SPAWNER: Mutex<Option<mpsc::Sender<SpawnJob>>> = Mutex::new(None);
    let mut guard = SPAWNER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tx) = guard.as_ref() {
        return Ok(tx.clone());
    }
    let (tx, rx) = mpsc::channel::<SpawnJob>();
    std::thread::Builder::new().name("tandem-testbed-spawner".into()).spawn(move || {
        // Lives until the process exits: the senders sit in a static.
        for (mut cmd, reply) in rx {
            let _ = reply.send(cmd.spawn());
        }
    })?;
    *guard = Some(tx.clone());
    Ok(tx)
}

/// Spawn `cmd` from the spawner thread, in its own process group, with
/// SIGKILL as parent-death signal.
fn spawn_tied_to_process(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // std runs pre_exec closures after setuid/setgid, which would
            // clear the death signal if it were set earlier.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.process_group(0);
    let gone = || io::Error::other("the testbed spawner thread is gone");
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()?.send((cmd, reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}

// ---------------------------------------------------------- one server

/// One server's directory, log and (at most one) running child process.
/// Dropping it stops the server and removes the directory.
pub(crate) struct ServerProcess {
    kind: ServerKind,
    id: u64,
    dir: PathBuf,
    log: PathBuf,
    port: AtomicU16,
    child: Mutex<Option<Child>>,
}

impl ServerProcess {
    /// Create and register a fresh directory; `log_name` is the log file in it.
    pub(crate) fn create(kind: ServerKind, port: u16, log_name: &str) -> Result<Self, TestbedError> {
        let dir = create_numbered_dir().map_err(|e| {
            TestbedError::new(
                format!("{}@127.0.0.1:{port}", kind.label()),
                format!("cannot create a directory under {}: {e}", std::env::temp_dir().display()),
            )
        })?;
        let id = register(dir.clone(), Some(kind));
        let log = dir.join(log_name);
        Ok(ServerProcess { kind, id, dir, log, port: AtomicU16::new(port), child: Mutex::new(None) })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.load(Ordering::SeqCst)
    }

    pub(crate) fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::SeqCst);
    }

    pub(crate) fn name(&self) -> String {
        format!("{}@127.0.0.1:{}", self.kind.label(), self.port())
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log, lines)
    }

    /// An error about this server with the tail of its log attached.
    pub(crate) fn error(&self, message: impl Into<String>) -> TestbedError {
        TestbedError::new(self.name(), message).with_log(self.log_tail(ERROR_LOG_LINES))
    }

    fn lock_child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server's pid while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.lock_child().as_ref().map(|c| c.id())
    }

    /// Start the server binary; stdout and stderr are appended to the log.
    pub(crate) fn spawn(&self, mut cmd: Command) -> Result<(), TestbedError> {
        let mut guard = self.lock_child();
        if guard.is_some() {
            return Err(self.error("already running"));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| self.error(format!("cannot open {}: {e}", self.log.display())))?;
        let log2 = log.try_clone().map_err(|e| self.error(format!("cannot dup the log file: {e}")))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2).current_dir(&self.dir);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = spawn_tied_to_process(cmd).map_err(|e| self.error(format!("cannot run {program}: {e}")))?;
        set_registered_pid(self.id, Some(child.id() as i32));
        *guard = Some(child);
        Ok(())
    }

    /// `Ok` while the child runs; an error with its exit status and log
    /// tail once it has exited (the child is then reaped and forgotten).
    pub(crate) fn check_running(&self) -> Result<(), TestbedError> {
        let mut guard = self.lock_child();
        let Some(child) = guard.as_mut() else {
            return Err(self.error("not running"));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                *guard = None;
                set_registered_pid(self.id, None);
                drop(guard);
                Err(self.error(format!("server exited during startup ({status})")))
            }
            Err(e) => Err(self.error(format!("cannot query the server process: {e}"))),
        }
    }

    /// Send `signal`, wait up to `timeout` for the exit, then SIGKILL.
    /// Returns an error if SIGKILL was needed. No-op if not running.
    pub(crate) fn stop_with(&self, signal: libc::c_int, timeout: Duration) -> Result<(), TestbedError> {
        let mut guard = self.lock_child();
        let Some(mut child) = guard.take() else { return Ok(()) };
        let pid = child.id() as libc::pid_t;
        let mut forced = false;
        if matches!(child.try_wait(), Ok(None)) {
            // SAFETY: `pid` is our unreaped child, so it cannot be recycled.
            unsafe {
                libc::kill(pid, signal);
            }
            let deadline = Instant::now() + timeout;
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() >= deadline {
                    forced = true;
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        set_registered_pid(self.id, None);
        drop(guard);
        if self.kind == ServerKind::Postgres {
            remove_pg_shm(&self.dir);
        }
        if forced {
            return Err(self.error(format!("did not stop within {timeout:?}; killed")));
        }
        Ok(())
    }

    /// Graceful stop: fast shutdown (SIGINT) for Postgres, SIGTERM for MariaDB.
    pub(crate) fn stop(&self) -> Result<(), TestbedError> {
        let signal = match self.kind {
            ServerKind::Postgres => libc::SIGINT,
            ServerKind::MariaDb => libc::SIGTERM,
        };
        self.stop_with(signal, STOP_TIMEOUT)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = fs::remove_dir_all(&self.dir);
        registry().remove(&self.id);
    }
}

// ---------------------------------------------------------- cleanup

/// Exit handler: stop every registered server without delay, reap it,
/// remove all registered directories. Must not panic (it runs from `exit`).
extern "C" fn cleanup_at_exit() {
    // Another thread may hold the lock while the process exits: wait a bit,
    // then give up rather than deadlock.
    let mut entries = Vec::new();
    for _ in 0..200 {
        match REGISTRY.try_lock() {
            Ok(mut reg) => {
                entries = std::mem::take(&mut *reg).into_values().collect();
                break;
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                entries = std::mem::take(&mut *p.into_inner()).into_values().collect();
                break;
            }
            Err(std::sync::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // Postgres gets an immediate shutdown (SIGQUIT): the postmaster then
    // stops and reaps its own children, instead of leaving orphans behind.
    // MariaDB is one process: SIGKILL. Either way no checkpoint is written.
    for entry in &entries {
        if let Some(pid) = entry.pid {
            let signal = if entry.kind == Some(ServerKind::Postgres) { libc::SIGQUIT } else { libc::SIGKILL };
            // SAFETY: registered pids are our unreaped children.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
    for entry in &entries {
        if let Some(pid) = entry.pid {
            if !reap(pid, Duration::from_secs(5)) {
                // SAFETY: still our unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                reap(pid, Duration::from_secs(5));
            }
        }
        if entry.kind == Some(ServerKind::Postgres) {
            remove_pg_shm(&entry.dir);
        }
        let _ = fs::remove_dir_all(&entry.dir);
    }
}

/// Wait (polling) for our child `pid` to exit; false on timeout.
fn reap(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on a pid we started.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r != 0 {
            return true; // reaped, or not ours/already gone (-1)
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Remove the System V shared memory segment a killed postmaster left
/// behind (a clean shutdown removes it and `postmaster.pid` with it). Only
/// removes a segment created by the pid named in `postmaster.pid`.
fn remove_pg_shm(dir: &Path) {
    let Ok(text) = fs::read_to_string(dir.join("data").join("postmaster.pid")) else { return };
    let lines: Vec<&str> = text.lines().collect();
    let Some(postmaster) = lines.first().and_then(|l| l.trim().parse::<libc::pid_t>().ok()) else { return };
    let Some(shmid) = lines.get(6).and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse::<libc::c_int>().ok())
    else {
        return;
    };
    // SAFETY: shmid_ds is plain data; IPC_STAT fills it or fails.
    unsafe {
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        if libc::shmctl(shmid, libc::IPC_STAT, &mut ds) == 0 && ds.shm_cpid == postmaster {
            libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Remove directories of earlier runs whose owner process is dead.
fn remove_leftovers() {
    let own = std::process::id() as i32;
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else { continue };
        let Some(owner) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if owner == own || owner <= 0 || process_alive(owner) {
            continue;
        }
        let dir = entry.path();
        kill_stale_server(&dir, &dir.join("data").join("postmaster.pid"));
        kill_stale_server(&dir, &dir.join("mysqld.pid"));
        remove_pg_shm(&dir);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// SIGKILL the server named by `pid_file` if its command line names `dir`.
fn kill_stale_server(dir: &Path, pid_file: &Path) {
    let Ok(text) = fs::read_to_string(pid_file) else { return };
    let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else { return };
    if pid <= 0 {
        return;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { return };
    let needle = dir.as_os_str().as_encoded_bytes();
    if !cmdline.windows(needle.len()).any(|w| w == needle) {
        return;
    }
    // SAFETY: the pid runs a server of the dead run (checked above).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        // Not our child: init reaps it; a zombie shows state 'Z'.
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.rsplit(')').next().map(|s| s.trim_start().starts_with('Z')).unwrap_or(true) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_dir_is_created_once_and_named_after_the_pid() {
        let a = scratch_dir().unwrap();
        let b = scratch_dir().unwrap();
        assert_eq!(a, b);
        assert!(a.is_dir());
        let name = a.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, format!("tandem-testbed-{}-scratch", std::process::id()));
    }

    #[test]
    fn leftovers_of_dead_pids_are_removed() {
        init();
        // pid_max is at most 2^22 on Linux: this pid cannot exist.
        let dead = std::env::temp_dir().join("tandem-testbed-99999999-1");
        fs::create_dir_all(dead.join("data")).unwrap();
        fs::write(dead.join("data").join("postmaster.pid"), "1\n").unwrap();
        let alive = create_numbered_dir().unwrap();
        remove_leftovers();
        assert!(!dead.exists());
        assert!(alive.exists());
        fs::remove_dir_all(alive).unwrap();
    }
}
