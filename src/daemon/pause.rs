//! The pause switch: a small file in the state directory, so `mana-personas
//! pause` works whether or not a daemon is running, survives restarts, and
//! needs no network or key on the host itself.
//!
//! `<state_dir>/pause` holds `paused` or `running` on its first line (then who
//! wrote it and when). When the file exists it wins over `RUNNER_PAUSED`, so
//! `resume` also lifts a pause that came from the environment; without the
//! file, `RUNNER_PAUSED` decides.

use std::io;
use std::path::{Path, PathBuf};

/// The file's name inside the state directory.
pub const FILE: &str = "pause";

/// What the switch says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    Paused,
    Running,
}

/// Where the switch lives for a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Reads the switch; `None` when there is no file. An unreadable or garbled
/// file is an error naming the path (the caller logs it and keeps its state).
pub fn read(file: &Path) -> io::Result<Option<Switch>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
    };
    match text.lines().next().map(str::trim) {
        Some("paused") => Ok(Some(Switch::Paused)),
        Some("running") => Ok(Some(Switch::Running)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: first line must be `paused` or `running`, found {:?}",
                file.display(),
                other.unwrap_or("")
            ),
        )),
    }
}

/// Writes the switch atomically (temp file + rename), noting who and when.
pub fn write(file: &Path, switch: Switch, by: &str) -> io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    }
    let word = match switch {
        Switch::Paused => "paused",
        Switch::Running => "running",
    };
    let body = format!(
        "{word}\nset by {by} at {}\n",
        chrono::Utc::now().to_rfc3339()
    );
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, file))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))
}

/// The effective state: the file if present, else the configuration.
pub fn effective(file_switch: Option<Switch>, configured_paused: bool) -> bool {
    match file_switch {
        Some(Switch::Paused) => true,
        Some(Switch::Running) => false,
        None => configured_paused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_wins_over_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let f = path(dir.path());
        assert_eq!(read(&f).unwrap(), None);
        assert!(effective(None, true));
        write(&f, Switch::Running, "test").unwrap();
        assert_eq!(read(&f).unwrap(), Some(Switch::Running));
        assert!(!effective(read(&f).unwrap(), true));
        write(&f, Switch::Paused, "test").unwrap();
        assert!(effective(read(&f).unwrap(), false));
        std::fs::write(&f, "maybe\n").unwrap();
        let e = read(&f).unwrap_err().to_string();
        assert!(e.contains("pause") && e.contains("maybe"), "{e}");
    }
}
