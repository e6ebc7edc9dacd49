//! The catalog loader/validator, driven through the library's public API with
//! the platform's real catalog, our own catalog.json and hand-made bad ones.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mana_personas::catalog::{self, Cadence, CatalogError, Persona, Problem};
use serde_json::{Value, json};

const ARCHETYPES: [&str; 7] = [
    "adhd-student",
    "ceo-busy",
    "creative-parent",
    "solo-dev",
    "researcher",
    "freelancer",
    "overwhelmed-newbie",
];

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn good(name: &str) -> Value {
    json!({
        "name": name,
        "email": format!("persona.{}@mana.test", name.to_lowercase()),
        "archetype": "solo-dev",
        "systemPrompt": "Du bist eine Testperson mit genug Text im Prompt.",
        "moduleMix": { "todo": 0.5, "notes": 0.5 },
        "tickCadence": "daily"
    })
}

fn doc(personas: Vec<Value>) -> String {
    json!({ "personas": personas }).to_string()
}

/// Parses text that must be invalid and returns its problems.
fn problems(text: &str) -> Vec<Problem> {
    match catalog::parse(text, Path::new("test.json")) {
        Err(CatalogError::Invalid { problems, .. }) => problems,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// One persona (index 1, after a good one) with `field` set to `value`
/// (or removed when `value` is None); returns the catalog's problems.
fn bad_field(field: &str, value: Option<Value>) -> Vec<Problem> {
    let mut p = good("Zed");
    match value {
        Some(v) => p[field] = v,
        None => {
            p.as_object_mut().unwrap().remove(field);
        }
    }
    problems(&doc(vec![good("Amy"), p]))
}

/// Asserts there is exactly one problem, at `personas[index].field`.
fn only<'a>(ps: &'a [Problem], index: usize, field: &str) -> &'a Problem {
    assert_eq!(ps.len(), 1, "exactly one problem expected: {ps:#?}");
    assert_eq!(ps[0].index, Some(index), "{ps:#?}");
    assert_eq!(ps[0].field, field, "{ps:#?}");
    &ps[0]
}

#[test]
fn platform_fixture_loads_unchanged() {
    let c = catalog::load(&manifest("tests/fixtures/mana-catalog.json")).unwrap();
    assert_eq!(c.personas.len(), 10);
    let mut want = ARCHETYPES.map(String::from).to_vec();
    want.sort();
    assert_eq!(c.archetypes(), want);
    // `$schema` and `description` are known top-level fields: no warnings.
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    let anna = c.by_email("PERSONA.ANNA@mana.test").unwrap();
    assert_eq!(anna.name, "Anna");
    assert_eq!(anna.tick_cadence, Cadence::Daily);
    let marcus = c.by_email("persona.marcus@mana.test").unwrap();
    assert_eq!(marcus.tick_cadence, Cadence::Weekdays);
}

#[test]
fn our_catalog_covers_every_archetype() {
    let c = catalog::load(&manifest("catalog.json")).unwrap();
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    assert!(c.personas.len() >= 12, "{}", c.personas.len());
    let got: BTreeSet<&str> = c.personas.iter().map(|p| p.archetype.as_str()).collect();
    assert_eq!(got, ARCHETYPES.into_iter().collect::<BTreeSet<_>>());
    let sandbox = ["todo", "journal", "notes", "mood", "habits", "spaces"];
    let extra = ["calendar", "contacts", "goals"];
    for p in &c.personas {
        assert!(p.email.starts_with("persona."), "{}", p.email);
        for m in p.module_mix.keys() {
            assert!(
                sandbox.contains(&m.as_str()) || extra.contains(&m.as_str()),
                "{} uses {m}",
                p.name
            );
        }
        let extras = p.module_mix.keys().filter(|m| extra.contains(&m.as_str()));
        assert!(
            extras.count() <= 1,
            "{} has more than one extra module",
            p.name
        );
    }
    let cadences: BTreeSet<&str> = c.personas.iter().map(|p| p.tick_cadence.as_str()).collect();
    assert_eq!(cadences.len(), 3, "a mix of all three cadences");
    // Different people from the platform's fixture.
    let fixture = catalog::load(&manifest("tests/fixtures/mana-catalog.json")).unwrap();
    for p in &c.personas {
        assert!(fixture.by_email(&p.email).is_none(), "{} copied", p.email);
        assert!(
            fixture
                .personas
                .iter()
                .all(|f| f.name != p.name && f.system_prompt != p.system_prompt),
            "{} copied",
            p.name
        );
    }
}

#[test]
fn prompt_templates_carry_their_placeholders() {
    let shape = r#"{"ratings":[{"module":"todo","rating":4,"notes":"..."}]}"#;
    for lang in ["de", "en"] {
        let main = std::fs::read_to_string(manifest(&format!("personas/{lang}/main.md"))).unwrap();
        for ph in [
            "{{date}}",
            "{{weekday}}",
            "{{name}}",
            "{{modules}}",
            "{{min_tools}}",
            "{{max_tools}}",
        ] {
            assert!(main.contains(ph), "{lang}/main.md lacks {ph}");
        }
        assert!(!main.contains("{{used_modules}}"), "{lang}/main.md");
        let rating =
            std::fs::read_to_string(manifest(&format!("personas/{lang}/rating.md"))).unwrap();
        assert!(rating.contains("{{used_modules}}"), "{lang}/rating.md");
        let line = rating
            .lines()
            .find(|l| l.contains(shape))
            .unwrap_or_else(|| panic!("{lang}/rating.md lacks the JSON shape"));
        serde_json::from_str::<Value>(line.trim())
            .expect("the example is valid JSON on its own line");
    }
    let readme = std::fs::read_to_string(manifest("personas/README.md")).unwrap();
    for ph in [
        "date",
        "weekday",
        "name",
        "modules",
        "min_tools",
        "max_tools",
        "used_modules",
    ] {
        assert!(
            readme.contains(&format!("`{{{{{ph}}}}}`")),
            "README lacks {ph}"
        );
    }
}

#[test]
fn missing_or_blank_name() {
    let ps = bad_field("name", None);
    let p = only(&ps, 1, "name");
    assert_eq!(p.email.as_deref(), Some("persona.zed@mana.test"));
    assert_eq!(p.message, "is required");
    let ps = bad_field("name", Some(json!("   ")));
    assert!(only(&ps, 1, "name").message.contains("empty"));
}

#[test]
fn bad_emails() {
    for bad in [
        "no-at-sign.mana.test",
        "a@b@mana.test",
        "@mana.test",
        "per son@mana.test",
        "x@mana.test\n",
    ] {
        let ps = bad_field("email", Some(json!(bad)));
        let p = only(&ps, 1, "email");
        assert!(!p.message.contains("end with"), "{bad}: {}", p.message);
    }
}

#[test]
fn non_mana_test_email() {
    let ps = bad_field("email", Some(json!("persona.zed@example.com")));
    let p = only(&ps, 1, "email");
    assert_eq!(
        p.to_string(),
        "personas[1] (persona.zed@example.com) email: must end with @mana.test (got \"persona.zed@example.com\")"
    );
}

#[test]
fn prompt_length_counts_characters_not_bytes() {
    let nineteen = "Grüße, Ärger, Öfen!";
    assert_eq!(nineteen.chars().count(), 19);
    assert!(nineteen.len() >= 20, "more bytes than chars");
    let ps = bad_field("systemPrompt", Some(json!(nineteen)));
    let p = only(&ps, 1, "systemPrompt");
    assert_eq!(
        p.to_string(),
        "personas[1] (persona.zed@mana.test) systemPrompt: must be at least 20 characters (got 19)"
    );
    let twenty = format!("{nineteen}ü");
    let mut ok = good("Zed");
    ok["systemPrompt"] = json!(twenty);
    let c = catalog::parse(&doc(vec![ok]), Path::new("t.json")).unwrap();
    assert_eq!(c.personas[0].system_prompt, twenty);
}

#[test]
fn module_mix_rules() {
    let ps = bad_field("moduleMix", Some(json!({ "todo": 0.5, "notes": -0.1 })));
    let p = only(&ps, 1, "moduleMix.notes");
    assert!(
        p.message.contains("≥ 0") && p.message.contains("-0.1"),
        "{}",
        p.message
    );

    let ps = bad_field("moduleMix", Some(json!({})));
    assert!(
        only(&ps, 1, "moduleMix")
            .message
            .contains("at least one module")
    );

    let ps = bad_field("moduleMix", Some(json!({ "todo": "viel" })));
    assert_eq!(
        only(&ps, 1, "moduleMix.todo").message,
        "weight must be a number (got string \"viel\")"
    );

    let ps = bad_field("moduleMix", Some(json!(["todo"])));
    assert!(only(&ps, 1, "moduleMix").message.contains("an array"));

    let ps = bad_field("moduleMix", None);
    assert_eq!(only(&ps, 1, "moduleMix").message, "is required");
}

#[test]
fn all_zero_mix_is_only_a_warning() {
    let mut p = good("Zed");
    p["moduleMix"] = json!({ "todo": 0, "notes": 0.0 });
    let c = catalog::parse(&doc(vec![p]), Path::new("t.json")).unwrap();
    assert_eq!(c.personas.len(), 1);
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].field, "moduleMix");
}

#[test]
fn bad_cadence() {
    let ps = bad_field("tickCadence", Some(json!("monthly")));
    let p = only(&ps, 1, "tickCadence");
    assert_eq!(
        p.message,
        "must be one of daily|weekdays|hourly (got \"monthly\")"
    );
    let ps = bad_field("tickCadence", Some(json!("Daily")));
    only(&ps, 1, "tickCadence");
    let ps = bad_field("tickCadence", Some(json!(1)));
    only(&ps, 1, "tickCadence");
}

#[test]
fn cadence_defaults_to_daily() {
    let mut p = good("Zed");
    p.as_object_mut().unwrap().remove("tickCadence");
    let mut h = good("Hal");
    h["tickCadence"] = json!("hourly");
    let c = catalog::parse(&doc(vec![p, h]), Path::new("t.json")).unwrap();
    assert_eq!(c.personas[0].tick_cadence, Cadence::Daily);
    assert_eq!(c.personas[1].tick_cadence, Cadence::Hourly);
}

#[test]
fn duplicate_email_names_both_indexes() {
    let mut dup = good("Other");
    dup["email"] = json!("Persona.AMY@mana.test");
    let ps = problems(&doc(vec![good("Amy"), good("Bo"), dup]));
    let p = only(&ps, 2, "email");
    assert_eq!(
        p.to_string(),
        "personas[2] (Persona.AMY@mana.test) email: duplicate of personas[0] (emails are compared case-insensitively)"
    );
}

#[test]
fn no_personas() {
    for text in [
        r#"{"personas": []}"#,
        r#"{"description": "x"}"#,
        r#"{"personas": {}}"#,
        "[]",
        "42",
    ] {
        let ps = problems(text);
        assert_eq!(ps.len(), 1, "{text}: {ps:#?}");
        assert_eq!(ps[0].index, None, "{text}");
    }
    let ps = problems(r#"{"personas": []}"#);
    assert_eq!(
        ps[0].to_string(),
        "personas: must contain at least one persona (got an empty array)"
    );
}

#[test]
fn wrong_types_are_errors() {
    let ps = bad_field("name", Some(json!(42)));
    assert_eq!(
        only(&ps, 1, "name").message,
        "must be a string (got number 42)"
    );
    let ps = bad_field("archetype", Some(json!(null)));
    assert!(only(&ps, 1, "archetype").message.contains("null"));
    let ps = bad_field("email", Some(json!(["persona.zed@mana.test"])));
    let p = only(&ps, 1, "email");
    assert_eq!(p.email, None, "a non-string email is not shown");
    assert_eq!(
        p.to_string(),
        "personas[1].email: must be a string (got an array)"
    );

    let ps = problems(&doc(vec![good("Amy"), json!("Bo")]));
    let p = only(&ps, 1, "");
    assert_eq!(
        p.to_string(),
        "personas[1]: must be an object (got string \"Bo\")"
    );

    let ps = problems(
        &json!({ "$schema": 1, "description": true, "personas": [good("Amy")] }).to_string(),
    );
    let fields: Vec<&str> = ps.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["$schema", "description"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = json!({
        "personas": [
            good("Amy"),
            { "name": "", "email": "x@example.com", "archetype": 3,
              "systemPrompt": "kurz", "moduleMix": { "todo": -1, "notes": "x" },
              "tickCadence": "yearly" },
            { "email": "persona.amy@mana.test" },
        ]
    })
    .to_string();
    let err = catalog::parse(&text, Path::new("/etc/mana/catalog.json")).unwrap_err();
    let CatalogError::Invalid { problems, .. } = &err else {
        panic!("{err:?}")
    };
    let got: BTreeSet<(Option<usize>, &str)> = problems
        .iter()
        .map(|p| (p.index, p.field.as_str()))
        .collect();
    let want: BTreeSet<(Option<usize>, &str)> = [
        (Some(1), "name"),
        (Some(1), "email"),
        (Some(1), "archetype"),
        (Some(1), "systemPrompt"),
        (Some(1), "moduleMix.todo"),
        (Some(1), "moduleMix.notes"),
        (Some(1), "tickCadence"),
        (Some(2), "name"),
        (Some(2), "archetype"),
        (Some(2), "systemPrompt"),
        (Some(2), "moduleMix"),
        (Some(2), "email"), // duplicate of personas[0]
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "{problems:#?}");
    assert_eq!(problems.len(), want.len());
    let shown = err.to_string();
    assert!(
        shown.starts_with("/etc/mana/catalog.json: catalog is invalid (12 problems):\n"),
        "{shown}"
    );
    for p in problems {
        assert!(
            shown.contains(&format!("\n  {p}")),
            "{p} missing from {shown}"
        );
    }
    assert_eq!(shown.lines().count(), 13, "{shown}");
}

#[test]
fn invalid_json_reports_line_and_column() {
    let text = "{\n  \"personas\": [\n    {\"name\": \"x\",}\n  ]\n}\n";
    match catalog::parse(text, Path::new("cat.json")) {
        Err(e @ CatalogError::Json { line, column, .. }) => {
            assert_eq!((line, column), (3, 18));
            let s = e.to_string();
            assert!(
                s.starts_with("cat.json:3:18: catalog is not valid JSON: "),
                "{s}"
            );
            assert!(!s.contains("at line"), "{s}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unreadable_file_is_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.json");
    let err = catalog::load(&path).unwrap_err();
    assert!(matches!(err, CatalogError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.json"), "{err}");
}

#[test]
fn unknown_fields_warn_and_still_load() {
    let mut p = good("Zed");
    p["favouriteColour"] = json!("blau");
    p["system_prompt"] = json!("ignored");
    let text =
        json!({ "$schema": "./s.json", "version": 2, "personas": [good("Amy"), p] }).to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    // With a BOM, as some editors write it.
    std::fs::write(&path, format!("\u{feff}{text}")).unwrap();
    let c = catalog::load(&path).unwrap();
    assert_eq!(c.personas.len(), 2);
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(
        w.contains(&"version: unknown field, ignored".to_string()),
        "{w:#?}"
    );
    assert!(w.contains(
        &"personas[1] (persona.zed@mana.test) favouriteColour: unknown field, ignored".to_string()
    ));
    assert!(
        w.iter()
            .any(|s| s.contains("system_prompt") && s.contains("did you mean \"systemPrompt\"")),
        "{w:#?}"
    );
}

#[test]
fn misspelt_required_field_hints_at_the_right_name() {
    let mut p = good("Zed");
    let prompt = p.as_object_mut().unwrap().remove("systemPrompt").unwrap();
    p["system_prompt"] = prompt;
    let ps = problems(&doc(vec![p]));
    let e = only(&ps, 0, "systemPrompt");
    assert_eq!(
        e.message,
        "is required (found \"system_prompt\" — did you mean \"systemPrompt\"?)"
    );
}

#[test]
fn preferred_modules_highest_weight_first_ties_by_name() {
    let mut p = good("Zed");
    p["moduleMix"] = json!({ "notes": 0.2, "todo": 0.4, "mood": 0.2, "habits": 0, "journal": 0.2 });
    let c = catalog::parse(&doc(vec![p]), Path::new("t.json")).unwrap();
    let persona: &Persona = &c.personas[0];
    assert_eq!(
        persona.preferred_modules(),
        ["todo", "journal", "mood", "notes", "habits"]
    );
}

#[test]
fn validate_value_keeps_valid_personas_and_survives_odd_input() {
    let v = json!({ "personas": [good("Amy"), { "name": "x" }, good("Bo")] });
    let (ok, errors, warnings) = catalog::validate_value(&v);
    assert_eq!(
        ok.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["Amy", "Bo"]
    );
    assert!(!errors.is_empty());
    assert!(errors.iter().all(|p| p.index == Some(1)), "{errors:#?}");
    assert!(warnings.is_empty());
    for odd in [
        json!(null),
        json!({ "personas": [null, 1, "x", [], {}] }),
        json!({ "personas": [{ "moduleMix": { "": 1 }, "email": "" }] }),
        json!({ "personas": [{ "email": "@@", "moduleMix": null, "tickCadence": {} }] }),
    ] {
        let (ok, errors, _) = catalog::validate_value(&odd);
        assert!(ok.is_empty() && !errors.is_empty(), "{odd}");
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const KEYS: [&str; 10] = [
        "name",
        "email",
        "archetype",
        "systemPrompt",
        "moduleMix",
        "tickCadence",
        "personas",
        "todo",
        "$schema",
        "other",
    ];

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(vec![
                "daily",
                "x@mana.test",
                "persona.a@mana.test",
                "Ein ausreichend langer Prompt für Tests",
                "ä",
                "",
            ])
            .prop_map(Value::from),
            ".{0,30}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 7, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..8).prop_map(
                    |kv| {
                        Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                    }
                ),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn validate_value_never_panics(v in arb_json()) {
            let (ok, errors, _) = catalog::validate_value(&v);
            // Whatever comes out as valid really satisfies the rules.
            for p in &ok {
                prop_assert!(p.email.ends_with("@mana.test"));
                prop_assert!(p.system_prompt.chars().count() >= 20);
                prop_assert!(!p.module_mix.is_empty());
                prop_assert!(p.module_mix.values().all(|w| w.is_finite() && *w >= 0.0));
            }
            if !v.is_object() {
                prop_assert!(!errors.is_empty());
            }
        }
    }
}

/// A mixed-case email is used lower-cased (the platform stores it so, and the
/// password is derived from the stored email) with one warning; a copy that
/// differs only in case is one duplicate problem, not two.
#[test]
fn mixed_case_email_is_lower_cased_with_one_warning_and_duplicates_are_one_problem() {
    let mut p = good("Mira");
    p["email"] = json!("Persona.Mira@Mana.Test");
    let c = catalog::parse(&doc(vec![good("Anna"), p.clone()]), Path::new("t.json")).unwrap();
    assert_eq!(c.personas[1].email, "persona.mira@mana.test");
    assert_eq!(c.warnings.len(), 1, "{:#?}", c.warnings);
    assert_eq!(c.warnings[0].field, "email");
    assert!(c.warnings[0].message.contains("persona.mira@mana.test"));

    let ps = problems(&doc(vec![good("Mira"), p]));
    let d = only(&ps, 1, "email");
    assert!(d.message.contains("duplicate of personas[0]"), "{d:?}");
}
