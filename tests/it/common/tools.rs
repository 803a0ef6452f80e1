//! Other tools' own stores, each private to one test: podman with its own `--root`/`--runroot`
//! and the vfs driver, and a containerd daemon with its own root, state and socket, talked to by
//! `ctr`. What they write (archives, layouts) is what users bring to `push --from`, and what
//! they read back of our bundles is the test of whether every tool can use them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::registry::require_tool;

/// A command's stdout, which must have succeeded.
fn ran(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// podman with a store of its own under a temporary directory.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        require_tool("podman");
        let dir = tempfile::tempdir().unwrap();
        // No search registries: a short name must not reach out to docker.io.
        std::fs::write(
            dir.path().join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        Podman { dir }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        let d = self.dir.path();
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            // Its libpod state too: the default, /run/libpod, is shared by every podman, and
            // one test's `system reset` removed it under another's pull.
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none"])
            .args(args)
            .env("XDG_RUNTIME_DIR", d.join("xdg"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env("REGISTRIES_CONFIG_PATH", d.join("registries.conf"));
        cmd
    }

    pub fn run(&self, args: &[&str]) -> String {
        ran(
            &format!("podman {}", args.join(" ")),
            self.cmd(args).output().unwrap(),
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // vfs layers are plain directories; some are read-only, which `rm -rf` as root ignores.
        let _ = self.cmd(&["system", "reset", "--force"]).output();
    }
}

/// A containerd daemon of a test's own, on a socket in a temporary directory.
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    pub fn start() -> Containerd {
        require_tool("containerd");
        require_tool("ctr");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.cmd(&["version"]).output().unwrap().status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not answer: {}",
                std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// `ctr --address SOCKET -n test ARGS`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.socket())
            .args(["-n", "test"])
            .args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> String {
        ran(
            &format!("ctr {}", args.join(" ")),
            self.cmd(args).output().unwrap(),
        )
    }

    /// The image names containerd holds (`ctr images ls -q`), sorted.
    pub fn image_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .run(&["images", "ls", "-q"])
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Snapshots may be mounted under its root.
        let root = self.dir.path().join("root");
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {}[^ ]*' /proc/mounts | xargs -r -n1 umount -l",
                root.display()
            ))
            .status();
    }
}
