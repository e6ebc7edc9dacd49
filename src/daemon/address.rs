//! Where the daemon of a state directory listens: `<state_dir>/daemon.addr`,
//! written once the HTTP server is bound and removed at a clean stop.
//!
//! Why: `pause`/`resume` act on a state directory, but confirm through the
//! daemon's `/health`. With `--listen 127.0.0.1:0` or a port set elsewhere,
//! the configured default address is the wrong one to ask, and "no daemon
//! answers" was reported while the daemon had paused. The file names the
//! daemon that really uses this state directory.

use std::io;
use std::path::{Path, PathBuf};

/// The file's name inside the state directory.
pub const FILE: &str = "daemon.addr";

/// What the file says about the daemon that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `http://HOST:PORT`.
    pub url: String,
    pub pid: u32,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Records `url` and this process's pid (first line the URL, second the pid).
pub fn write(state_dir: &Path, url: &str) -> io::Result<()> {
    std::fs::write(
        path(state_dir),
        format!("{url}\npid {}\n", std::process::id()),
    )
}

/// Removes the record if it is still this process's.
pub fn remove(state_dir: &Path) {
    if read(state_dir).is_some_and(|r| r.pid == std::process::id()) {
        let _ = std::fs::remove_file(path(state_dir));
    }
}

/// The recorded daemon, if the file exists and parses.
pub fn read(state_dir: &Path) -> Option<Recorded> {
    let text = std::fs::read_to_string(path(state_dir)).ok()?;
    let mut lines = text.lines();
    let url = lines.next()?.trim().to_string();
    let pid = lines.next()?.trim().strip_prefix("pid ")?.parse().ok()?;
    url.starts_with("http://").then_some(Recorded { url, pid })
}
