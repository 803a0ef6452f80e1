//! Nothing of ours outlives an interrupted run.
//!
//! Destructors (a `TempDir`'s drop) do not run when a signal ends the process, so a run's
//! temporary paths (a compressed bundle unpacked, a blob being saved, a tar's staging
//! directory) are registered here while they exist. The first registration starts a thread
//! that waits for SIGINT, SIGTERM and SIGHUP; on one, it removes every registered path and
//! exits with 128 + the signal's number (130, 143, 129), as a shell reports a process the
//! signal ended. `kill -9` cannot be caught: what it leaves carries the PID in its name, and
//! the next run removes what a PID no longer running left, once it is an hour old ([`sweep`]).
//!
//! Every file or directory of ours is created inside [`creating`], which the handler waits
//! for before it removes anything: a creation in flight when the signal comes finishes (and
//! is removed), and none starts afterwards.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

static PATHS: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static LISTENING: OnceLock<()> = OnceLock::new();
/// Set when a signal came: writers stop at their next [`creating`] rather than create files
/// in a directory being removed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Read-held by each creation ("check [`INTERRUPTED`], create, register"), write-held by the
/// handler from before it removes anything until the process exits.
static CREATION: RwLock<()> = RwLock::new(());

/// An entry left by a dead run is removed only once it is this old: the PID is checked in our
/// own PID namespace, and a run in another container sharing the directory (a shared /tmp or
/// output directory) may hold that PID over there and be writing the entry right now. A live
/// writer touches its file as it writes, so its mtime stays recent.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// A path removed if the process is interrupted; dropping this forgets it (its owner removes
/// or keeps the path itself).
pub(crate) struct Registered(u64);

/// Registers `path` (which need not exist yet: register before creating, so no moment leaves
/// it unknown).
pub(crate) fn register(path: &Path) -> Registered {
    listen();
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    paths().push((id, path.to_path_buf()));
    Registered(id)
}

impl Drop for Registered {
    fn drop(&mut self) {
        paths().retain(|(id, _)| *id != self.0);
    }
}

fn paths() -> MutexGuard<'static, Vec<(u64, PathBuf)>> {
    PATHS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A temporary directory that is removed on drop, as `tempfile`'s, and on a signal too.
pub(crate) struct TempDir {
    // Dropped in this order: the directory removed, then forgotten.
    dir: tempfile::TempDir,
    _registered: Registered,
}

impl TempDir {
    /// A new directory in `parent` named `prefix` + our PID + a random tail, so that [`sweep`]
    /// can tell whether the run that made it still runs.
    pub(crate) fn new_in(parent: &Path, prefix: &str) -> io::Result<TempDir> {
        let prefix = format!("{prefix}{}-", std::process::id());
        // Listening before the directory exists, and creating and registering it inside
        // `creating`: a signal at any moment finds it registered or not yet made.
        listen();
        let creating = creating();
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(parent)?;
        let registered = register(dir.path());
        drop(creating);
        Ok(TempDir {
            dir,
            _registered: registered,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Held while a file or directory of ours is created (and registered, when it is a
/// registered path): the signal handler waits for it before removing anything.
pub(crate) struct Creating {
    _guard: RwLockReadGuard<'static, ()>,
}

/// Begins a creation; waits forever once a signal has come (the handler is removing our files
/// and will end the process). Hold the result across the `create` (and the `register`) only:
/// it is a blocking lock, so never across an `.await`.
pub(crate) fn creating() -> Creating {
    let guard = CREATION.read().unwrap_or_else(|p| p.into_inner());
    if INTERRUPTED.load(Ordering::SeqCst) {
        // Released first, or the handler waiting for it would wait forever.
        drop(guard);
        loop {
            std::thread::park();
        }
    }
    Creating { _guard: guard }
}

/// Removes what runs no longer running left in `dir`: each entry for which `pid_in` gives a
/// PID that is not ours and not alive, and that was last modified over [`STALE_AFTER`] ago
/// (a PID gone here may be alive in another PID namespace sharing the directory).
pub(crate) fn sweep(dir: &Path, pid_in: impl Fn(&str) -> Option<u32>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(&pid_in) else {
            continue;
        };
        if abandoned(&entry.path(), pid, STALE_AFTER) {
            remove(&entry.path());
        }
    }
}

/// Whether `path`, which carries `pid` in its name, was left by a run no longer running: the
/// PID is not ours nor alive, and the file has not moved for `quiet` (not knowing, or a time in
/// the future, counts as recent). For removing, `quiet` is [`STALE_AFTER`]; a writer that takes
/// the file over to continue it can wait less, as it checks what it continues.
pub(crate) fn abandoned(path: &Path, pid: u32, quiet: Duration) -> bool {
    pid != std::process::id()
        && !alive(pid)
        && std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > quiet)
}

/// The PID at the start of `s` (digits up to its end or a `-`).
pub(crate) fn leading_pid(s: &str) -> Option<u32> {
    let end = s.find('-').unwrap_or(s.len());
    let digits = &s[..end];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return true;
    };
    // EPERM: alive, another user's.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    // Not knowing, keep it.
    true
}

/// Removes a file or a directory tree; a writer still creating files in it is outrun by a few
/// tries.
fn remove(path: &Path) {
    for _ in 0..20 {
        let result = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// Starts the thread that waits for signals, once, and returns when it waits.
fn listen() {
    LISTENING.get_or_init(|| {
        let (ready, waiting) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    let _ = ready.send(());
                    return;
                };
                if let Some((code, name)) = runtime.block_on(wait(ready)) {
                    clean_up_and_exit(code, name);
                }
            });
        if spawned.is_ok() {
            let _ = waiting.recv();
        }
    });
}

#[cfg(unix)]
async fn wait(ready: std::sync::mpsc::Sender<()>) -> Option<(i32, &'static str)> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    let _ = ready.send(());
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = signals else {
        return None;
    };
    tokio::select! {
        _ = int.recv() => Some((130, "SIGINT")),
        _ = term.recv() => Some((143, "SIGTERM")),
        _ = hup.recv() => Some((129, "SIGHUP")),
    }
}

#[cfg(not(unix))]
async fn wait(ready: std::sync::mpsc::Sender<()>) -> Option<(i32, &'static str)> {
    let ctrl_c = tokio::signal::ctrl_c();
    let _ = ready.send(());
    ctrl_c.await.ok().map(|()| (130, "Ctrl-C"))
}

fn clean_up_and_exit(code: i32, name: &str) -> ! {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // Creations in flight finish (and registered what they made); none starts after this.
    // Taken before `paths`, which a creation may be waiting for to register.
    let _no_creation = CREATION.write().unwrap_or_else(|p| p.into_inner());
    // Held to the end: nothing registers anything meanwhile.
    let paths = paths();
    for (_, path) in paths.iter() {
        remove(path);
    }
    eprintln!(
        "interrupted ({name}); removed {} temporary file(s) and directories",
        paths.len()
    );
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_read_from_names() {
        assert_eq!(leading_pid("1234-abc"), Some(1234));
        assert_eq!(leading_pid("1234"), Some(1234));
        assert_eq!(leading_pid("12a-x"), None);
        assert_eq!(leading_pid("-1"), None);
    }

    /// Sets the mtime of `path` (a file or a directory) to `ago` before now.
    fn age(path: &Path, ago: Duration) {
        let when = std::time::SystemTime::now() - ago;
        std::fs::File::open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn sweep_removes_what_dead_runs_left_long_ago_and_keeps_the_living() {
        let dir = tempfile::tempdir().unwrap();
        // PIDs above the kernel's maximum (4194304) never run.
        let dead = dir.path().join("x.partial-999999999");
        let ours = dir.path().join(format!("x.partial-{}", std::process::id()));
        // A live process that is not us: the test runner's parent.
        let parent = dir
            .path()
            .join(format!("x.partial-{}", std::os::unix::process::parent_id()));
        // Dead here, but written a minute ago: maybe by a live run in another PID namespace.
        let recent = dir.path().join("y.partial-999999998");
        let other = dir.path().join("x.tmp");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("f"), "x").unwrap();
        for file in [&ours, &parent, &recent, &other] {
            std::fs::write(file, "x").unwrap();
        }
        let two_hours = Duration::from_secs(2 * 60 * 60);
        for old in [&dead, &ours, &parent, &other] {
            age(old, two_hours);
        }
        age(&recent, Duration::from_secs(60));
        sweep(dir.path(), |n| leading_pid(n.split_once(".partial-")?.1));
        assert!(!dead.exists(), "dead two hours: removed");
        for kept in [&ours, &parent, &recent, &other] {
            assert!(kept.exists(), "{} kept", kept.display());
        }
    }
}
