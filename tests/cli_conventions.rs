//! The conventions a Rust CLI user expects: every flag and argument described,
//! global options under their own heading, shell completions and a man page
//! generated from the same definitions, `-q` that leaves only the answer.

mod common;

use clap::CommandFactory;
use common::Shell;
use mana_personas::cli::Cli;

/// Every argument of every (sub)command, with the command path, that has no
/// help text. `--help`/`--version` are clap's own.
fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        if a.get_help().is_none() && a.get_long_help().is_none() {
            out.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            out.push(format!("{path} {} (the command itself)", sub.get_name()));
        }
        undescribed(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_flag_argument_and_command_has_a_description() {
    let mut missing = Vec::new();
    undescribed(&Cli::command(), "mana-personas", &mut missing);
    assert!(missing.is_empty(), "without a description: {missing:#?}");
}

#[test]
fn global_options_have_their_own_heading() {
    let out = Shell::new().run_blocking(&["tick", "--help"]);
    out.expect_code(0);
    let (own, global) = out
        .stdout
        .split_once("Global options:")
        .expect("a 'Global options:' heading");
    assert!(own.contains("--once"), "{}", out.stdout);
    assert!(
        !own.contains("--state-dir"),
        "global flag among tick's own:\n{}",
        out.stdout
    );
    assert!(
        global.contains("--state-dir") && global.contains("--quiet"),
        "{}",
        out.stdout
    );
}

#[test]
fn completions_for_each_shell_name_the_commands_and_flags() {
    let sh = Shell::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = sh.run_blocking(&["completions", shell]);
        out.expect_code(0);
        // fish spells long flags `-l once`.
        for word in ["tick", "seed", "once", "state-dir"] {
            assert!(out.stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    let out = sh.run_blocking(&["completions", "tcsh"]);
    out.expect_code(2);
}

#[test]
fn man_page_is_roff_for_the_whole_cli() {
    let out = Shell::new().run_blocking(&["man"]);
    out.expect_code(0);
    assert!(out.stdout.contains(".TH mana-personas 1"), "{}", out.stdout);
    assert!(out.stdout.contains(".SH SUBCOMMANDS") || out.stdout.contains("tick"));
}

/// Logs on a terminal are coloured unless `NO_COLOR` is set (no-color.org).
/// `script` (util-linux) gives the daemon a pseudo-terminal; `timeout` stops
/// it after its first log lines.
#[test]
fn no_color_turns_off_ansi_colours_on_a_terminal() {
    let run = |no_color: bool| -> String {
        let state = tempfile::tempdir().unwrap();
        let inner = format!(
            "timeout 2 env {}MANA_SERVICE_KEY=k MANA_PERSONAS_LISTEN=127.0.0.1:0 \
             STATE_DIRECTORY={} RUNNER_PAUSED=true {} daemon",
            if no_color { "NO_COLOR=1 " } else { "" },
            state.path().display(),
            env!("CARGO_BIN_EXE_mana-personas")
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .env_remove("NO_COLOR")
            .output()
            .expect("`script` (util-linux) runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = run(false);
    assert!(coloured.contains("ready"), "{coloured}");
    assert!(
        coloured.contains('\x1b'),
        "a terminal gets colours: {coloured}"
    );
    let plain = run(true);
    assert!(plain.contains("ready"), "{plain}");
    assert!(!plain.contains('\x1b'), "NO_COLOR=1 gets none: {plain}");
}

/// A fatal error under `--json` is still JSON on stdout (`{"error",
/// "exitCode"}`), and under `--log-format json` every stderr line is JSON.
#[test]
fn fatal_errors_follow_json_and_log_format() {
    let sh = Shell::new();
    let out = sh.run_blocking(&["show", "someone@mana.test", "--json"]);
    out.expect_code(2);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", out.stdout));
    assert_eq!(v["exitCode"], 2);
    assert!(v["error"].as_str().unwrap().contains("admin JWT"), "{v}");

    let out = sh.run_blocking(&["--log-format", "json", "list"]);
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    for line in out.stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
        assert_eq!(v["level"], "ERROR", "{v}");
    }
    assert!(out.stderr.contains("admin JWT"), "{}", out.stderr);
}
