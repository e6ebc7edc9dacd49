//! Configuration layering, provenance and the production checks, through the
//! library with an explicit environment.

use std::collections::HashMap;

mod common;

use mana_personas::config::{Config, ConfigError, KEYS, Kind, Need, Overrides, Source};
use proptest::prelude::*;
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn source_of(cfg: &Config, key: &str) -> Source {
    cfg.entries()
        .into_iter()
        .find(|e| e.key == key)
        .unwrap()
        .source
}

#[test]
fn defaults_file_env_flags_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "# comment\napi_url = \"http://file:1\"\nauth_url = \"http://file:2\"\nconcurrency = 3\n",
    )
    .unwrap();
    let mut ov = Overrides {
        config_path: Some(file.clone()),
        flags: vec![],
    };
    ov.set("api_url", Some("http://flag:9"), "--api");
    let cfg = Config::load_with(
        &ov,
        &env(&[("MANA_AUTH_URL", "http://env:3"), ("HOME", "/nonexistent")]),
    )
    .unwrap();
    assert_eq!(cfg.api_url, "http://flag:9");
    assert_eq!(cfg.auth_url, "http://env:3");
    assert_eq!(cfg.concurrency, 3);
    assert_eq!(cfg.mcp_url, "http://localhost:3069");
    assert_eq!(
        source_of(&cfg, "api_url"),
        Source::Flag {
            name: "--api".into()
        }
    );
    assert_eq!(
        source_of(&cfg, "auth_url"),
        Source::Env {
            name: "MANA_AUTH_URL".into()
        }
    );
    assert_eq!(
        source_of(&cfg, "concurrency"),
        Source::File {
            path: file,
            line: 4
        }
    );
    assert_eq!(source_of(&cfg, "mcp_url"), Source::Default);
    assert_eq!(cfg.tick_interval.as_millis(), 60000);
}

#[test]
fn unknown_file_keys_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "api_url = \"http://x:1\"\n\nconcurency = 3\n").unwrap();
    let ov = Overrides {
        config_path: Some(file),
        flags: vec![],
    };
    let e = Config::load_with(&ov, &env(&[])).unwrap_err().to_string();
    assert!(e.contains("line 3") && e.contains("`concurency`"), "{e}");
}

#[test]
fn bad_values_are_all_reported_naming_variable_and_value() {
    let e = Config::load_with(
        &Overrides::default(),
        &env(&[
            ("TICK_INTERVAL_MS", "abc"),
            ("PERSONA_CONCURRENCY", "0"),
            ("RUNNER_PAUSED", "maybe"),
            ("MANA_API_URL", "ftp://x"),
        ]),
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "TICK_INTERVAL_MS=\"abc\"",
        "PERSONA_CONCURRENCY=\"0\"",
        "RUNNER_PAUSED=\"maybe\"",
        "MANA_API_URL",
    ] {
        assert!(e.contains(needle), "{needle} missing from: {e}");
    }
}

/// A listen address the daemon could not bind is a configuration error found
/// at load time (so `config` shows it and every command exits 2), whether it
/// came from `PORT` or `MANA_PERSONAS_LISTEN`.
#[test]
fn bad_listen_addresses_are_configuration_errors() {
    for (var, value, shown) in [
        ("PORT", "abc", "PORT=\"127.0.0.1:abc\""),
        ("PORT", "70000", "PORT=\"127.0.0.1:70000\""),
        (
            "MANA_PERSONAS_LISTEN",
            "localhost",
            "MANA_PERSONAS_LISTEN=\"localhost\"",
        ),
        (
            "MANA_PERSONAS_LISTEN",
            ":3070",
            "MANA_PERSONAS_LISTEN=\":3070\"",
        ),
    ] {
        let e = Config::load_with(&Overrides::default(), &env(&[(var, value)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(shown) && e.contains("HOST:PORT"),
            "{var}={value}: {e}"
        );
    }
    let cfg = Config::load_with(&Overrides::default(), &env(&[("PORT", "3071")])).unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:3071");
}

#[test]
fn secrets_come_from_files_and_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "svc-TOPSECRET-1\n").unwrap();
    let cfg = Config::load_with(
        &Overrides::default(),
        &env(&[
            ("MANA_SERVICE_KEY_FILE", key.to_str().unwrap()),
            ("MANA_ADMIN_JWT", "adm-TOPSECRET-2"),
        ]),
    )
    .unwrap();
    assert_eq!(
        cfg.service_key.as_ref().unwrap().expose_secret(),
        "svc-TOPSECRET-1"
    );
    let shown = format!(
        "{:?} {}",
        cfg,
        serde_json::to_string(&cfg.entries()).unwrap()
    );
    assert!(!shown.contains("TOPSECRET"), "{shown}");
    assert!(shown.contains("<set>") && shown.contains("<unset>"));
}

#[test]
fn production_lists_every_missing_piece_at_once() {
    let cfg =
        Config::load_with(&Overrides::default(), &env(&[("NODE_ENV", "production")])).unwrap();
    assert!(cfg.production);
    let e = cfg
        .require(&[Need::ServiceKey, Need::LlmKey, Need::SeedSecret])
        .unwrap_err();
    assert!(
        matches!(e, ConfigError::Production(ref p) if p.len() == 3),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("MANA_SERVICE_KEY")
            && msg.contains("ANTHROPIC_API_KEY")
            && msg.contains("PERSONA_SEED_SECRET"),
        "{msg}"
    );
    // Outside production the dev fallback and a missing LLM key are fine.
    let dev = Config::load_with(&Overrides::default(), &env(&[("MANA_SERVICE_KEY", "k")])).unwrap();
    dev.require(&[Need::ServiceKey, Need::LlmKey, Need::SeedSecret])
        .unwrap();
}

#[test]
fn the_example_file_loads_and_caps_tool_calls() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mana-personas.example.toml");
    Config::load_with(
        &Overrides {
            config_path: Some(example),
            flags: vec![],
        },
        &env(&[]),
    )
    .unwrap();
    let e =
        Config::load_with(&Overrides::default(), &env(&[("MAX_TOOL_CALLS", "501")])).unwrap_err();
    assert!(e.to_string().contains("at most 500"), "{e}");
}

/// A secret file without end (`/dev/zero`) or just too big is refused at
/// 64 KiB, naming the variable and the file, through `mana-personas config`
/// (exit 2) — instead of reading gigabytes into memory.
#[test]
fn secret_files_are_read_with_a_size_limit() {
    let mut sh = common::Shell::new();
    let big = sh.path("huge-key");
    std::fs::write(&big, vec![b'k'; 64 * 1024 + 1]).unwrap();
    let fits = sh.path("fits-key");
    std::fs::write(&fits, format!("{}\n", "k".repeat(64 * 1024 - 1))).unwrap();
    for (var, path) in [
        ("MANA_SERVICE_KEY_FILE", "/dev/zero".to_string()),
        ("ANTHROPIC_API_KEY_FILE", big.display().to_string()),
    ] {
        sh.set(var, &path);
        let out = sh.run_blocking(&["config"]);
        out.expect_code(2);
        assert!(
            out.stderr.contains(var)
                && out.stderr.contains(&path)
                && out.stderr.contains("too big"),
            "{var}={path}: {}",
            out.stderr
        );
        sh.set(var, fits.to_str().unwrap());
        sh.run_blocking(&["config"]).expect_code(0);
    }
}

/// The integer settings of the table, with their bounds.
fn int_settings() -> Vec<(&'static str, &'static str, u64, u64)> {
    KEYS.iter()
        .filter_map(|k| match k.kind {
            Kind::Int { min, max } => Some((k.name, k.env[0], min, max)),
            _ => None,
        })
        .collect()
}

#[test]
fn integers_out_of_range_are_errors_not_wraps_or_panics() {
    assert!(int_settings().len() >= 8, "{:?}", int_settings());
    for (var, value) in [
        ("LEDGER_RETENTION_DAYS", "100000000"),
        ("MAX_TOOL_CALLS", "4294967297"),
        ("MAX_TURNS", "4294967297"),
        ("PERSONA_CONCURRENCY", "18446744073709551617"),
        ("PERSONA_TIMEOUT_SECS", "18446744073709551615"),
    ] {
        let e = Config::load_with(&Overrides::default(), &env(&[(var, value)]))
            .err()
            .unwrap_or_else(|| panic!("{var}={value} was accepted"))
            .to_string();
        assert!(e.contains(&format!("{var}=\"{value}\"")), "{e}");
    }
    // Every default of the table passes its own bounds.
    let cfg = Config::load_with(&Overrides::default(), &env(&[])).unwrap();
    for (name, _, min, max) in int_settings() {
        let v = cfg.int_setting(name).expect(name);
        assert!((min..=max).contains(&v), "{name} default {v}");
    }
}

/// A string that looks like an integer, sometimes, or anything else.
fn int_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<u128>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[ +-]?[0-9_]{0,25}[ ]?",
        ".{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Any string for any integer setting: accepted within its bounds with
    /// exactly that value, or a configuration error naming the setting's
    /// variable — never a panic, a wrap or a silent default. And an accepted
    /// ledger retention prunes without panicking.
    #[test]
    fn every_integer_setting_is_bounded_or_refused(
        which in 0usize..64,
        value in int_like(),
    ) {
        let all = int_settings();
        let (name, var, min, max) = all[which % all.len()];
        match Config::load_with(&Overrides::default(), &env(&[(var, value.as_str())])) {
            Ok(cfg) => {
                let n: u64 = value.trim().parse().expect("accepted means an integer");
                prop_assert!((min..=max).contains(&n), "{var}={value:?} accepted outside {min}..={max}");
                prop_assert_eq!(cfg.int_setting(name), Some(n));
                if name == "ledger_retention_days" {
                    let dir = tempfile::tempdir().unwrap();
                    let state = mana_personas::state::State::open(dir.path()).unwrap();
                    state.ledger_prune(cfg.ledger_retention_days, chrono::Utc::now()).unwrap();
                }
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(matches!(e, ConfigError::Invalid(_)), "{text}");
                prop_assert!(text.contains(var), "{var}={value:?}: {text}");
            }
        }
    }
}
