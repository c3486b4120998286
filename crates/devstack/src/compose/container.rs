//! A process that sees the file system a container would: a private mount
//! namespace (`unshare --mount`) with a copy-on-write overlay of `/` as its
//! root, the compose volumes bind-mounted at their container paths, a hosts
//! file that resolves the compose service names, the image's user and an
//! empty environment plus the container's. Nothing of this is visible to
//! the rest of the machine, and `/etc/hosts` of the machine is never edited.
//!
//! Needs root (mount namespaces and overlayfs), as `docker compose` does.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// One bind mount into the container.
#[derive(Debug, Clone)]
pub struct Mount {
    pub host: PathBuf,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct Container {
    /// An empty directory the private root is built in.
    pub scratch: PathBuf,
    pub hosts_file: PathBuf,
    pub mounts: Vec<Mount>,
    /// `uid:gid` (or names) to run as; root when unset.
    pub user: Option<String>,
    pub workdir: String,
    /// Compose's `read_only`: the root file system is mounted read-only
    /// (volumes keep their own mode).
    pub read_only: bool,
}

/// `'…'` quoting for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The machine's top-level mounts (other than `/`), which an overlay of `/`
/// does not show: `/proc`, `/dev`, `/sys` and any other file system a
/// checkout or a tool may live on.
fn host_mounts(exclude: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p != "/" && !Path::new(p).starts_with(exclude) && Path::new(p).is_dir())
        .collect();
    points.sort();
    points.dedup();
    let mut top: Vec<String> = Vec::new();
    for p in points {
        if !top.iter().any(|t| Path::new(&p).starts_with(t)) {
            top.push(p);
        }
    }
    top
}

impl Container {
    /// The command that runs `argv` with exactly `env` inside the container.
    pub fn command(&self, env: &[(String, String)], argv: &[String]) -> tokio::process::Command {
        let q = |p: &Path| sh_quote(&p.to_string_lossy());
        let mut s = String::from("set -e\n");
        s += &format!("B={}\n", q(&self.scratch));
        s += "mount -t tmpfs -o size=64m,mode=755 tmpfs \"$B\"\n";
        s += "mkdir \"$B/u\" \"$B/w\" \"$B/r\"\n";
        s += "mount -t overlay overlay -o \"lowerdir=/,upperdir=$B/u,workdir=$B/w\" \"$B/r\"\n";
        s += "R=\"$B/r\"\n";
        for m in host_mounts(&self.scratch) {
            let m = sh_quote(&m);
            s += &format!("mkdir -p \"$R\"{m} && mount --rbind {m} \"$R\"{m}\n");
        }
        for m in &self.mounts {
            let t = sh_quote(&m.target);
            if m.host.is_dir() {
                s += &format!("mkdir -p \"$R\"{t}\n");
            } else {
                s += &format!("mkdir -p \"$(dirname \"$R\"{t})\" && touch \"$R\"{t}\n");
            }
            s += &format!("mount --bind {} \"$R\"{t}\n", q(&m.host));
            if m.read_only {
                s += &format!("mount -o remount,bind,ro \"$R\"{t}\n");
            }
        }
        s += &format!("mount --bind {} \"$R/etc/hosts\"\n", q(&self.hosts_file));
        if self.read_only {
            s += "mount -o remount,bind,ro \"$R\"\n";
        }
        let userspec = self
            .user
            .as_ref()
            .map(|u| format!("--userspec={} ", sh_quote(u)))
            .unwrap_or_default();
        s += &format!(
            "exec chroot {userspec}\"$R\" /usr/bin/env -i -C {} \"$@\"\n",
            sh_quote(&self.workdir)
        );
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(s)
            .arg("sh");
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(argv).stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
