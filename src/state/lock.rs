//! One process per state directory: an OS file lock on `$STATE_DIR/lock`,
//! held for the life of the process that runs ticks (`tick`, `daemon`,
//! `demo`).
//!
//! Why: two processes on one state directory each drain the same outbox and
//! run every due persona — two tick ids, twice the rows, the LLM paid twice.
//!
//! Why `flock(2)` through `libc` (already a dependency) and not a pid file or
//! a crate: the kernel releases the lock when the process dies, however it
//! dies (SIGKILL, OOM, power loss of a container), so there is never a stale
//! lock to clean up; and it is one system call, not worth a crate (`fs4`,
//! `fd-lock` wrap the same call). The file's text names the holder (pid,
//! command, since when) so the second process can say who it is waiting on;
//! the text is information, the lock is the kernel's.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file's name inside the state directory.
pub const FILE: &str = "lock";

/// Held while alive; the kernel drops the lock with the file descriptor.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: exit 4 ([`crate::exit::LOCKED`]).
    #[error(
        "state directory {dir} is in use by another process ({holder}); one process per state directory — stop it, or give this one its own --state-dir"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock the state directory ({path}): {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateLock {
    /// Takes the lock of `dir` (created if needed) without waiting, and
    /// records `command` as its holder.
    pub fn acquire(dir: &Path, command: &str) -> Result<StateLock, LockError> {
        let path = dir.join(FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        // Not truncated on open: the holder's text must survive a loser's open.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor this function owns; no memory is
        // passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder: holder_of(&mut file),
                });
            }
            return Err(io(err));
        }
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let holder = format!(
            "pid {}, `mana-personas {command}`, since {since}",
            std::process::id()
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        Ok(StateLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The holder's text. The holder writes it right after taking the lock, so
/// an empty file is read again a few times before "holder unknown".
fn holder_of(file: &mut File) -> String {
    for _ in 0..10 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            let text = text.trim();
            if !text.is_empty() {
                return text.to_string();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    "holder unknown".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder_and_is_free_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path(), "tick --once").unwrap();
        match StateLock::acquire(dir.path(), "daemon") {
            Err(LockError::Held { holder, .. }) => {
                assert!(holder.contains(&format!("pid {}", std::process::id())));
                assert!(holder.contains("tick --once"), "{holder}");
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        StateLock::acquire(dir.path(), "daemon").unwrap();
    }
}
