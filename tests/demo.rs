//! `demo`, the real binary: the whole pipeline on its embedded sandbox, as a
//! new user first runs it. A rerun with the same `--dir` reports that run,
//! not the database's totals; the default temp dir is removed unless `--keep`.

mod common;

use common::Shell;

fn rows_this_run(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("this run stored"))
        .unwrap_or_else(|| panic!("no 'this run stored' line:\n{out}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn rerun_in_the_same_dir_reports_this_run_only() {
    let sh = Shell::new();
    let dir = sh.path("demo");
    let d = dir.display().to_string();
    let first = sh.run_blocking(&["demo", "--dir", &d]);
    first.expect_code(0);
    let (actions, feedback) = rows_this_run(&first.stdout);
    assert!(actions > 0 && feedback > 0, "{}", first.stdout);
    assert!(
        first.stdout.contains(&format!("rm -rf {d}")),
        "{}",
        first.stdout
    );

    // Every persona ran a moment ago: nothing is due, and the rerun says so
    // instead of showing the first run's rows again.
    let second = sh.run_blocking(&["demo", "--dir", &d]);
    second.expect_code(0);
    assert_eq!(rows_this_run(&second.stdout), (0, 0), "{}", second.stdout);
    assert!(
        second.stdout.contains("no persona was due"),
        "{}",
        second.stdout
    );
    assert!(dir.join("sandbox.db").is_file());
}

#[test]
fn default_dir_is_removed_unless_keep_and_json_is_only_json() {
    let sh = Shell::new();
    let out = sh.run_blocking(&["demo", "--json"]);
    out.expect_code(0);
    let summary: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).expect("stdout is one JSON document");
    assert!(summary["actions"].as_u64().unwrap() > 0, "{summary}");
    let removed = out
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("removed "))
        .unwrap_or_else(|| panic!("no 'removed' line:\n{}", out.stderr));
    let path = removed.split(" (").next().unwrap();
    assert!(!std::path::Path::new(path).exists(), "{path} still exists");

    let kept = sh.run_blocking(&["demo", "--keep"]);
    kept.expect_code(0);
    let line = kept
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("kept in "))
        .unwrap_or_else(|| panic!("no 'kept in' line:\n{}", kept.stdout));
    let path = line.split(" (").next().unwrap();
    assert!(std::path::Path::new(path).join("sandbox.db").is_file());
    std::fs::remove_dir_all(path).unwrap();
}
