//! The runner under test is the real binary in its own process, so its CPU
//! and memory can be told apart from the sandbox's: `wait4` gives the child's
//! user and system time; a sampler thread reads `/proc/PID/status` while it
//! runs for its RSS over time and its peak (`VmHWM`).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mana_sandbox::DEV_SERVICE_KEY;

/// What one run of the binary cost.
#[derive(Debug, Clone)]
pub struct ChildRun {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    /// Peak resident set of the binary, KiB: the highest `VmHWM` read from
    /// `/proc/PID/status` (the high-water mark of the exec'd image, so a
    /// peak between two samples still counts).
    pub peak_rss_kib: u64,
    /// `ru_maxrss` from `wait4`, KiB. Not the binary's peak: Linux carries
    /// the pre-exec high-water mark across `exec`, and `Command` spawns with
    /// vfork, so this is at least this process's own RSS (the sandbox's).
    pub rusage_maxrss_kib: u64,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// `(ms since spawn, VmRSS KiB)` every ~10 ms.
    pub rss_samples: Vec<(u64, u64)>,
}

impl ChildRun {
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }
}

/// The settings a scenario is rerun with (`TOOLS_OFFER=preferred just bench
/// cost`, `LLM_MODEL=claude-haiku-4-5 …`, `DAY_TOOLS_MAX=3 …` for a shorter
/// day, `MAX_TOOL_CALLS` for a day cut at its budget): passed through to the
/// runner, everything else stays clean.
const LEVERS: [&str; 5] = [
    "TOOLS_OFFER",
    "LLM_MODEL",
    "DAY_TOOLS_MIN",
    "DAY_TOOLS_MAX",
    "MAX_TOOL_CALLS",
];

/// The levers set in this environment, as the runner gets them (and as a
/// result records them: unset means the runner's default).
pub fn levers() -> Vec<(&'static str, String)> {
    LEVERS
        .iter()
        .filter_map(|&l| std::env::var(l).ok().map(|v| (l, v)))
        .collect()
}

/// `bin --state-dir STATE tick --once --force --json --concurrency C` with a
/// clean environment pointing every URL at `url`. With `wrap` (a profiler's
/// command line, e.g. `perf record -g -o OUT --`), the binary runs under it:
/// for profiling runs only, since the CPU and RSS measured are then the
/// profiler's as well.
pub fn tick_command(
    bin: &Path,
    url: &str,
    home: &Path,
    concurrency: usize,
    wrap: &[String],
) -> Command {
    let mut c = match wrap.split_first() {
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    c.env_clear()
        .current_dir(home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("xdg-state"))
        .env("MANA_AUTH_URL", url)
        .env("MANA_API_URL", url)
        .env("MANA_MCP_URL", url)
        .env("ANTHROPIC_BASE_URL", url)
        .env("ANTHROPIC_API_KEY", "sandbox-llm-key")
        .env("LLM_PROVIDER", "anthropic")
        .env("MANA_SERVICE_KEY", DEV_SERVICE_KEY)
        .env("MANA_PERSONAS_LOG", "warn")
        // Scenarios 1-6 measure the runner, not apps/api's 200/min budget:
        // the sandbox's limiter is off (fixture.rs) and so is the runner's
        // pacer (`benches/paced.sh` measures the budget).
        .env("API_RATE_LIMIT_PER_MIN", "0");
    for (lever, v) in levers() {
        c.env(lever, v);
    }
    c.args(["--state-dir", &home.join("state").display().to_string()])
        .args(["tick", "--once", "--force", "--json"])
        .args(["--concurrency", &concurrency.to_string()]);
    c
}

/// `(VmRSS, VmHWM)` in KiB; `None` once the process is gone or a zombie.
fn vm_kib(pid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `cmd` to the end (blocking) and measures it.
pub fn run(mut cmd: Command) -> anyhow::Result<ChildRun> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut v, mut hwm) = (Vec::new(), 0);
            while !done.load(Ordering::Relaxed) {
                if let Some((rss, peak)) = vm_kib(pid) {
                    v.push((t0.elapsed().as_millis() as u64, rss));
                    hwm = hwm.max(peak);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (v, hwm)
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    anyhow::ensure!(
        r == pid,
        "wait4({pid}) failed: {}",
        std::io::Error::last_os_error()
    );
    // The child is reaped: `child` must not be waited on again; dropping it is fine.
    drop(child);
    let exit_code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let (rss_samples, peak_rss_kib) = sampler.join().unwrap_or_default();
    Ok(ChildRun {
        wall,
        user: timeval(ru.ru_utime),
        sys: timeval(ru.ru_stime),
        peak_rss_kib,
        rusage_maxrss_kib: ru.ru_maxrss as u64,
        exit_code,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        rss_samples,
    })
}

/// CPU (user + sys) this process has used so far: the sandbox's share of a
/// run is the difference around it (the harness is idle meanwhile).
pub fn self_cpu() -> Duration {
    // SAFETY: as above, for RUSAGE_SELF.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    timeval(ru.ru_utime) + timeval(ru.ru_stime)
}
