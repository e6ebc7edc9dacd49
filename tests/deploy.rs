//! The files in `deploy/`, checked by the tools that consume them: the systemd
//! unit by `systemd-analyze verify` and `security`, the Kubernetes manifest by a
//! YAML parser, and every variable name they set by the binary's own `config`
//! command (a name `config` does not read would be silently ignored in
//! production).
//!
//! Needs `systemd-analyze` (Debian package `systemd`), `python3` with PyYAML
//! and `kubernetes-validate` (PyPI). A test never installs anything: `.ci/run`
//! installs them and the README lists them. Nothing here is skipped when a tool
//! is missing: the test fails and says how to install it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Shell;
use serde_json::Value;
use tempfile::TempDir;

const UNIT_NAME: &str = "mana-personas.service";
/// Where the unit expects the binary (README: "copy the binary").
const INSTALLED_BINARY: &str = "/usr/local/bin/mana-personas";
/// The ceiling for `systemd-analyze security`'s overall exposure (0 = best,
/// 10 = worst). The unit scores 1.1 on systemd 252; newer systemd versions add
/// checks, hence the headroom. Above 2.0 a hardening line went missing.
const MAX_EXPOSURE: f64 = 2.0;
/// The binary's own default grace, from `config --json` in a clean
/// environment (so the unit cannot drift from the code).
fn default_shutdown_grace() -> Duration {
    let dir = TempDir::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mana-personas"))
        .env_clear()
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .args(["config", "--json"])
        .output()
        .expect("config --json runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("config --json is JSON");
    let ms = v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "shutdown_grace_ms")
        .and_then(|s| s["value"].as_str()?.parse::<u64>().ok())
        .expect("config knows shutdown_grace_ms");
    Duration::from_millis(ms)
}

fn deploy_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    let p = deploy_file(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------
// The systemd unit

/// `systemd-analyze`; when it is missing the test fails saying how to get it.
fn systemd_analyze() -> Command {
    if !succeeds("systemd-analyze", &["--version"]) {
        panic!(
            "systemd-analyze is missing: install the `systemd` package, e.g. `sudo apt-get \
             install -y --no-install-recommends systemd` (.ci/run does this)"
        );
    }
    Command::new("systemd-analyze")
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A copy of the unit under its own name in a fresh directory, after `edit`.
fn unit_copy(edit: impl FnOnce(String) -> String) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(UNIT_NAME);
    std::fs::write(&path, edit(read(UNIT_NAME))).expect("write unit copy");
    (dir, path)
}

/// `verify` checks that ExecStart's binary exists, and /usr/local/bin is not
/// where cargo builds it: the copy runs the binary this test was built with.
fn with_built_binary(unit: String) -> String {
    assert!(
        unit.contains(INSTALLED_BINARY),
        "the unit runs {INSTALLED_BINARY}"
    );
    unit.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_mana-personas"))
}

/// `systemd-analyze verify`: passes when it exits 0 and says nothing about our
/// unit. Unknown keys and unparsable values are only warnings with exit 0, so
/// the warnings are what catches a typo.
fn verify(unit: &Path) -> Result<(), String> {
    let out = systemd_analyze()
        .arg("verify")
        .arg(unit)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let about_us: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains(UNIT_NAME))
        .collect();
    if out.status.success() && about_us.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "systemd-analyze verify {}: {}\n{}",
            unit.display(),
            out.status,
            if about_us.is_empty() {
                stderr.to_string()
            } else {
                about_us.join("\n")
            }
        ))
    }
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let (_dir, unit) = unit_copy(with_built_binary);
    if let Err(m) = verify(&unit) {
        panic!("{m}");
    }
}

#[test]
fn verify_check_catches_typos_and_a_missing_binary() {
    let typo_key = |u: String| with_built_binary(u).replace("\nProtectHome=", "\nProtectHomme=");
    let (_d1, unit) = unit_copy(typo_key);
    let err = verify(&unit).expect_err("a misspelt directive must fail the check");
    assert!(err.contains("ProtectHomme"), "{err}");

    let typo_value =
        |u: String| with_built_binary(u).replace("\nWatchdogSec=60", "\nWatchdogSec=6O");
    let (_d2, unit) = unit_copy(typo_value);
    let err = verify(&unit).expect_err("an unparsable value must fail the check");
    assert!(err.contains("6O"), "{err}");

    let missing = |u: String| u.replace(INSTALLED_BINARY, "/nonexistent/mana-personas");
    let (_d3, unit) = unit_copy(missing);
    let err = verify(&unit).expect_err("a missing ExecStart binary must fail the check");
    assert!(err.contains("/nonexistent/mana-personas"), "{err}");
}

/// `systemd-analyze security --offline=yes` (systemd ≥ 250) on the unit file.
fn exposure(unit: &Path) -> (f64, String) {
    let out = systemd_analyze()
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)
        .output()
        .expect("run systemd-analyze security");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let marker = format!("Overall exposure level for {UNIT_NAME}:");
    let score = text
        .lines()
        .find_map(|l| l.split_once(&marker))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| {
            panic!("no exposure score (systemd ≥ 250 needed for --offline):\n{text}")
        });
    (score, text)
}

#[test]
fn unit_security_exposure_stays_low() {
    let (_dir, unit) = unit_copy(with_built_binary);
    let (score, table) = exposure(&unit);
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{table}"
    );

    // The same measure notices a hardening line going missing.
    let weaker = |u: String| with_built_binary(u).replace("\nSystemCallFilter=", "\n#");
    let (_d2, unit) = unit_copy(weaker);
    let (weaker_score, _) = exposure(&unit);
    assert!(weaker_score > score, "{weaker_score} vs {score}");
}

/// `(section, key, value)` of every assignment, in file order.
fn unit_assignments(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "continuation lines are not parsed here: {line}"
        );
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        } else {
            panic!("not a unit file line: {line}");
        }
    }
    out
}

/// The last value of `key` in `[Service]` (later assignments win in systemd).
fn service_value(key: &str) -> Option<String> {
    unit_assignments(&read(UNIT_NAME))
        .into_iter()
        .filter(|(s, k, _)| s == "Service" && k == key)
        .map(|(_, _, v)| v)
        .next_back()
}

#[test]
fn unit_runs_the_daemon_the_way_it_expects() {
    // verify and security accept a unit that is valid but wrong for this
    // binary; these are the lines the daemon's behaviour depends on.
    let want = [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "2"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "mana-personas"),
        ("EnvironmentFile", "-/etc/mana-personas/env"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
    ];
    let problems: Vec<String> = want
        .iter()
        .filter_map(|(k, v)| {
            let got = service_value(k);
            (got.as_deref() != Some(*v)).then(|| format!("{k}={v} wanted, found {got:?}"))
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let exec = service_value("ExecStart").expect("ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[..2], [INSTALLED_BINARY, "daemon"], "{exec}");
}

/// A systemd time span: `45`, `45s`, `1min 30s`, `500ms`, `2h`.
fn timespan(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in s.split_whitespace() {
        let split = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        let (n, unit) = part.split_at(split);
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("time span {s:?}"));
        total += match unit {
            "" | "s" | "sec" => Duration::from_secs(n),
            "ms" | "msec" => Duration::from_millis(n),
            "m" | "min" => Duration::from_secs(60 * n),
            "h" | "hr" => Duration::from_secs(3600 * n),
            _ => panic!("time span unit {unit:?} in {s:?} is not parsed here"),
        };
    }
    total
}

/// `NAME=value` lines of the env example, active or commented out.
fn env_example() -> Vec<EnvLine> {
    read("mana-personas.env.example")
        .lines()
        .filter_map(|l| {
            let (active, rest) = match l.strip_prefix('#') {
                Some(r) => (false, r.strip_prefix(' ').unwrap_or(r)),
                None => (true, l),
            };
            let (name, value) = rest.split_once('=')?;
            let is_name = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| EnvLine {
                name: name.to_string(),
                value: value.to_string(),
                active,
            })
        })
        .collect()
}

#[derive(Debug, Clone)]
struct EnvLine {
    name: String,
    value: String,
    /// Not commented out.
    active: bool,
}

#[test]
fn stop_timeout_exceeds_the_shutdown_grace() {
    let stop = timespan(&service_value("TimeoutStopSec").expect("TimeoutStopSec"));
    // An operator who raises the grace in the env example must raise this too.
    let grace = env_example()
        .iter()
        .find(|l| l.active && l.name == "SHUTDOWN_GRACE_MS")
        .map(|l| Duration::from_millis(l.value.parse().expect("SHUTDOWN_GRACE_MS")))
        .unwrap_or_else(default_shutdown_grace);
    assert!(
        stop > grace,
        "TimeoutStopSec {stop:?} must exceed the shutdown grace {grace:?}, or systemd kills \
         in-flight personas before their rows reach the outbox"
    );
    let watchdog = timespan(&service_value("WatchdogSec").expect("WatchdogSec"));
    assert!(
        watchdog >= Duration::from_secs(10),
        "WatchdogSec {watchdog:?}"
    );
}

// ---------------------------------------------------------------------------
// Kubernetes

/// Every document of the manifest, as JSON, through PyYAML.
fn kubernetes_docs() -> Vec<Value> {
    const SCRIPT: &str = "import json, sys\n\
        try:\n    import yaml\nexcept ImportError:\n    sys.exit(3)\n\
        json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(deploy_file("kubernetes/cronjob.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to parse YAML: {e}"));
    match out.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "PyYAML is missing: `python3 -m pip install pyyaml` or `apt-get install \
             python3-yaml` (.ci/run does this)"
        ),
        _ => panic!(
            "cronjob.yaml does not parse: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

fn doc<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in cronjob.yaml"))
}

/// The container that runs the tick, and its argv (`command` + `args`).
fn tick_container(cronjob: &Value) -> (&Value, Vec<String>) {
    let containers = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    containers
        .iter()
        .map(|c| {
            let argv = ["command", "args"]
                .iter()
                .flat_map(|k| c[*k].as_array().cloned().unwrap_or_default())
                .map(|a| a.as_str().map(str::to_string).unwrap_or(a.to_string()))
                .collect::<Vec<_>>();
            (c, argv)
        })
        .find(|(_, argv)| argv.iter().any(|a| a == "tick"))
        .expect("a container running `tick`")
}

/// Everything wrong with the CronJob's sharding and state, all at once.
fn cronjob_problems(docs: &[Value]) -> Vec<String> {
    let mut p = Vec::new();
    let cj = doc(docs, "CronJob");
    let job = &cj["spec"]["jobTemplate"]["spec"];
    let pod = &job["template"]["spec"];
    let (c, argv) = tick_container(cj);
    if cj["spec"]["concurrencyPolicy"] != "Forbid" {
        p.push(format!(
            "concurrencyPolicy {}",
            cj["spec"]["concurrencyPolicy"]
        ));
    }
    if job["completionMode"] != "Indexed" {
        p.push(format!("completionMode {}", job["completionMode"]));
    }
    let n = job["completions"].as_u64().filter(|n| *n >= 1);
    if n.is_none() || job["parallelism"].as_u64() != n {
        p.push(format!(
            "completions {} and parallelism {} must be the same N ≥ 1",
            job["completions"], job["parallelism"]
        ));
    }
    for word in ["tick", "--once"] {
        if !argv.iter().any(|a| a == word) {
            p.push(format!("argv {argv:?} lacks {word}"));
        }
    }
    let shard = argv
        .iter()
        .position(|a| a == "--shard")
        .and_then(|i| argv.get(i + 1));
    let want = format!("$(JOB_COMPLETION_INDEX)/{}", n.unwrap_or(0));
    if shard != Some(&want) {
        p.push(format!("--shard {shard:?}, wanted {want}"));
    }
    if pod["restartPolicy"] != "Never" {
        p.push(format!("restartPolicy {}", pod["restartPolicy"]));
    }
    let env = c["env"].as_array().cloned().unwrap_or_default();
    let env_of = |name: &str| env.iter().find(|e| e["name"] == name).cloned();
    let index_path = env_of("JOB_COMPLETION_INDEX")
        .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
        .unwrap_or_default();
    if index_path != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
        p.push(format!("JOB_COMPLETION_INDEX fieldRef {index_path}"));
    }
    // STATE_DIRECTORY is on the PVC, one subdirectory per index.
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
    let state = env_of("STATE_DIRECTORY").map(|e| e["value"].clone());
    let mount = mounts
        .iter()
        .find(|m| Some(&m["mountPath"]) == state.as_ref());
    let claim = mount.and_then(|m| {
        volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .map(|v| v["persistentVolumeClaim"]["claimName"].clone())
    });
    let pvc = docs
        .iter()
        .find(|d| d["kind"] == "PersistentVolumeClaim")
        .map(|d| d["metadata"]["name"].clone());
    if claim.is_none() || claim != pvc {
        p.push(format!(
            "STATE_DIRECTORY {state:?} is not on the PersistentVolumeClaim {pvc:?}"
        ));
    }
    let sub = mount.and_then(|m| m["subPathExpr"].as_str()).unwrap_or("");
    if !sub.contains("$(JOB_COMPLETION_INDEX)") {
        p.push(format!(
            "the state mount's subPathExpr {sub:?} is not per index"
        ));
    }
    // Every *_FILE names a key of the mounted Secret.
    let secret = doc(docs, "Secret");
    for e in env
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.ends_with("_FILE")))
    {
        let path = Path::new(e["value"].as_str().unwrap_or(""));
        let found = mounts.iter().any(|m| {
            let secret_volume = volumes.iter().any(|v| {
                v["name"] == m["name"] && v["secret"]["secretName"] == secret["metadata"]["name"]
            });
            let key = path
                .strip_prefix(m["mountPath"].as_str().unwrap_or("/nowhere"))
                .ok()
                .and_then(|k| k.to_str());
            secret_volume && key.is_some_and(|k| !secret["stringData"][k].is_null())
        });
        if !found {
            p.push(format!(
                "{}={} is not a key of the mounted Secret",
                e["name"].as_str().unwrap_or_default(),
                path.display()
            ));
        }
    }
    p
}

#[test]
fn cronjob_is_indexed_and_shards_by_completion_index() {
    let docs = kubernetes_docs();
    let problems = cronjob_problems(&docs);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The same check refuses a manifest whose N disagree.
    let mut bad = docs.clone();
    let cj = bad.iter_mut().find(|d| d["kind"] == "CronJob").unwrap();
    let n = cj["spec"]["jobTemplate"]["spec"]["parallelism"]
        .as_u64()
        .unwrap();
    cj["spec"]["jobTemplate"]["spec"]["parallelism"] = (n + 1).into();
    let problems = cronjob_problems(&bad);
    assert!(
        problems.iter().any(|p| p.contains("parallelism")),
        "{problems:?}"
    );
}

/// The Kubernetes version the manifests must be valid for: the oldest one
/// still supported by the major providers when this was written.
const KUBERNETES_VERSION: &str = "1.30.0";

/// `kubernetes-validate --strict` on `files`: Ok, or what it printed.
fn kubernetes_validate(files: &[PathBuf]) -> Result<(), String> {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubernetes-validate is missing ({e}): `python3 -m pip install \
                 kubernetes-validate` (.ci/run does this)"
            )
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `kubectl apply` refuses what the API server's schema refuses, so every
/// manifest is checked against the Kubernetes schemas, not only parsed.
#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    let dir = deploy_file("kubernetes");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    if let Err(m) = kubernetes_validate(&files) {
        panic!("a manifest fails the Kubernetes {KUBERNETES_VERSION} schemas:\n{m}");
    }

    // The check catches the error kubectl once refused: a pod condition rule
    // without its required `status`.
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("cronjob.yaml");
    let text = read("kubernetes/cronjob.yaml");
    assert!(
        text.contains("status: \"True\""),
        "the manifest changed shape"
    );
    std::fs::write(&bad, text.replacen("status: \"True\"", "", 1)).expect("write copy");
    let m = kubernetes_validate(&[bad]).expect_err("a rule without status must fail");
    assert!(m.contains("status"), "{m}");
}

// ---------------------------------------------------------------------------
// Variable names

/// Runs `config --json` with only `name=value` set (a `*_FILE` name gets a
/// file holding a value) and checks that some setting now comes from `name`.
/// `config` does not complain about variables it does not read, so "some
/// setting's source is this variable" is the proof that it is read.
fn config_reads(name: &str, value: &str) -> Result<(), String> {
    let mut sh = Shell::new();
    let value = if name.ends_with("_FILE") {
        let f = sh.path("secret");
        std::fs::write(&f, "a-secret-from-a-file\n").expect("write secret file");
        f.display().to_string()
    } else {
        value.to_string()
    };
    sh.set(name, &value);
    let out = sh.run_blocking(&["config", "--json"]);
    if out.code != 0 {
        return Err(format!(
            "{name}={value}: config exits {}: {}",
            out.code, out.stderr
        ));
    }
    let v: Value = serde_json::from_str(&out.stdout).expect("config --json is JSON");
    let read = v["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .any(|s| s["source"]["kind"] == "env" && s["source"]["name"] == name);
    if read {
        Ok(())
    } else {
        Err(format!(
            "{name}: no setting of `mana-personas config` reads it"
        ))
    }
}

/// Every variable name the deploy files set, with the value they give it.
fn deploy_variables() -> Vec<(String, String, &'static str)> {
    let mut v: Vec<(String, String, &'static str)> = env_example()
        .into_iter()
        .map(|l| (l.name, l.value, "mana-personas.env.example"))
        .collect();
    for (s, k, val) in unit_assignments(&read(UNIT_NAME)) {
        if s == "Service" && k == "Environment" {
            let (name, value) = val.split_once('=').expect("Environment=NAME=value");
            v.push((name.into(), value.into(), UNIT_NAME));
        }
    }
    let docs = kubernetes_docs();
    let (c, _) = tick_container(doc(&docs, "CronJob"));
    for e in c["env"].as_array().expect("env") {
        let name = e["name"].as_str().expect("env name");
        // Kubernetes' own, for the --shard argument.
        if name != "JOB_COMPLETION_INDEX" {
            let value = e["value"].as_str().expect("env value");
            v.push((name.into(), value.into(), "cronjob.yaml env"));
        }
    }
    for (name, value) in doc(&docs, "ConfigMap")["data"].as_object().expect("data") {
        let value = value.as_str().expect("ConfigMap values are strings");
        v.push((name.clone(), value.into(), "cronjob.yaml ConfigMap"));
    }
    v
}

#[test]
fn every_variable_the_deploy_files_set_is_read_by_config() {
    let vars = deploy_variables();
    for must in [
        "MANA_SERVICE_KEY",
        "PERSONA_SEED_SECRET",
        "ANTHROPIC_API_KEY",
    ] {
        assert!(
            vars.iter()
                .any(|(n, _, f)| n == must && *f == "mana-personas.env.example"),
            "the env example names {must}"
        );
    }
    let problems: Vec<String> = vars
        .iter()
        .filter_map(|(n, val, file)| config_reads(n, val).err().map(|e| format!("{file}: {e}")))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The check refuses a name config does not read.
    let err = config_reads("MANA_SERVICE_KEYS", "x").expect_err("a misspelt name");
    assert!(err.contains("no setting"), "{err}");
}

#[test]
fn env_example_as_shipped_is_a_valid_configuration() {
    // Its active lines together, as systemd passes them, after the unit's own
    // Environment= (the file overrides it, as in systemd).
    let mut sh = Shell::new();
    let unit_env = unit_assignments(&read(UNIT_NAME))
        .into_iter()
        .filter(|(s, k, _)| s == "Service" && k == "Environment")
        .map(|(_, _, v)| v);
    for nv in unit_env {
        let (n, v) = nv.split_once('=').unwrap();
        sh.set(n, v);
    }
    let active: Vec<EnvLine> = env_example().into_iter().filter(|l| l.active).collect();
    for l in &active {
        sh.set(&l.name, &l.value);
    }
    let out = sh.run_blocking(&["config", "--json"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).expect("config --json is JSON");
    let settings = v["settings"].as_array().expect("settings");
    for l in &active {
        assert!(
            settings
                .iter()
                .any(|s| s["source"]["name"] == l.name.as_str()),
            "{} is not the source of any setting:\n{}",
            l.name,
            out.stdout
        );
    }
    let production = settings.iter().find(|s| s["key"] == "production").unwrap();
    assert_eq!(
        production["value"], "true",
        "the service runs in production mode"
    );
}
