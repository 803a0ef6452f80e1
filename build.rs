//! Records the git revision the binary is built from, for `--version` and `version`: a bug report
//! then names the exact source. Outside a git checkout (a crate tarball) it says `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AIRGAP_GIT_REVISION={revision}");
    // Rebuild when HEAD moves: a commit, a checkout, or a branch's ref changing. Only paths that
    // exist are named: cargo reruns the script on every build for a missing one (a fresh clone
    // has no loose ref for a packed branch, and often no packed-refs).
    // In a worktree `.git` is a file naming the worktree's own git directory (its HEAD), whose
    // `commondir` holds the refs and packed-refs shared by every worktree.
    let mut git = std::path::PathBuf::from(".git");
    let mut common = git.clone();
    if let Ok(text) = std::fs::read_to_string(&git)
        && let Some(dir) = text.strip_prefix("gitdir: ")
    {
        git = Path::new(dir.trim()).to_path_buf();
        common = match std::fs::read_to_string(git.join("commondir")) {
            Ok(c) => git.join(c.trim()),
            Err(_) => git.clone(),
        };
    }
    let mut watched = vec![git.join("HEAD"), common.join("packed-refs")];
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(reference) = head.strip_prefix("ref: ")
    {
        watched.push(common.join(reference.trim()));
        // The branch's loose ref may not exist yet (packed in a fresh clone) and appears with
        // the first commit: its directory is watched too, which cargo scans for changes.
        if let Some(dir) = Path::new(reference.trim()).parent() {
            watched.push(common.join(dir));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
