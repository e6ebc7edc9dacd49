//! The rating turn's answer, parsed tolerantly: the model was asked for bare
//! JSON, but models wrap it in prose or code fences, invent modules, and rate
//! 0 or 7. What comes out is always valid for the platform: only modules the
//! persona used, ratings rounded and clamped to 1..5, notes ≤ 1000 chars, at
//! most one row per module; or one `__parse` row saying why nothing could be
//! read, so operators see the failure.

use serde_json::Value;

use super::batch::cut_chars;
use crate::platform::internal::FeedbackRow;

/// Notes are cut to this many characters.
pub const NOTES_CHARS: usize = 1000;
/// The module of the row that reports an unreadable answer.
pub const PARSE_MODULE: &str = "__parse";

/// A module rating before it gets a tick id.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    pub module: String,
    pub rating: u8,
    pub notes: Option<String>,
}

/// Parses `text` into ratings for the `used` modules (never panics).
pub fn parse(text: &str, used: &[String]) -> Vec<Rating> {
    let Some(ratings) = find_ratings(text) else {
        let reason = format!(
            "rating answer had no JSON object with a \"ratings\" array: {}",
            cut_chars(text.trim(), 300)
        );
        return vec![Rating {
            module: PARSE_MODULE.to_string(),
            rating: 3,
            notes: Some(cut_chars(&reason, NOTES_CHARS)),
        }];
    };
    let mut out: Vec<Rating> = Vec::new();
    for r in ratings {
        let Some(module) = r.get("module").and_then(Value::as_str).map(str::trim) else {
            continue;
        };
        let Some(module) = used.iter().find(|u| u.eq_ignore_ascii_case(module)) else {
            continue;
        };
        if out.iter().any(|o| &o.module == module) {
            continue;
        }
        let Some(value) = number(r.get("rating")) else {
            continue;
        };
        let notes = r
            .get("notes")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| cut_chars(n, NOTES_CHARS));
        out.push(Rating {
            module: module.clone(),
            rating: value.round().clamp(1.0, 5.0) as u8,
            notes,
        });
    }
    out
}

/// Turns ratings into feedback rows of one tick.
pub fn rows(tick_id: &str, ratings: Vec<Rating>) -> Vec<FeedbackRow> {
    ratings
        .into_iter()
        .map(|r| FeedbackRow {
            tick_id: tick_id.to_string(),
            module: r.module,
            rating: r.rating,
            notes: r.notes,
        })
        .collect()
}

/// A rating as a finite number, accepting numeric strings ("4").
fn number(v: Option<&Value>) -> Option<f64> {
    let n = match v? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// The first JSON object in `text` (anywhere: fenced, after prose) that has a
/// `ratings` array; a bare top-level array of ratings is accepted too.
fn find_ratings(text: &str) -> Option<Vec<Value>> {
    for (i, c) in text.char_indices() {
        if c != '{' && c != '[' {
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(Value::Object(o))) => {
                if let Some(Value::Array(a)) = o.get("ratings") {
                    return Some(a.clone());
                }
            }
            Some(Ok(Value::Array(a))) if a.iter().any(|v| v.get("module").is_some()) => {
                return Some(a);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used() -> Vec<String> {
        vec!["todo".into(), "journal".into(), "mood".into()]
    }

    #[test]
    fn plain_fenced_and_prose_wrapped_json_all_parse() {
        let plain = r#"{"ratings":[{"module":"todo","rating":4,"notes":"gut"}]}"#;
        let fenced = format!("```json\n{plain}\n```");
        let prose = format!("Klar, hier meine Bewertung: {plain} Das war's.");
        for text in [plain.to_string(), fenced, prose] {
            let r = parse(&text, &used());
            assert_eq!(
                r,
                vec![Rating {
                    module: "todo".into(),
                    rating: 4,
                    notes: Some("gut".into())
                }],
                "{text}"
            );
        }
    }

    #[test]
    fn ratings_are_rounded_clamped_and_limited_to_used_modules() {
        let text = r#"{"ratings":[{"module":"todo","rating":7},{"module":"journal","rating":0},
            {"module":"mood","rating":3.6},{"module":"invoices","rating":5},{"module":"todo","rating":1}]}"#;
        let r = parse(text, &used());
        let got: Vec<(&str, u8)> = r.iter().map(|r| (r.module.as_str(), r.rating)).collect();
        assert_eq!(got, vec![("todo", 5), ("journal", 1), ("mood", 4)]);
    }

    #[test]
    fn numeric_strings_and_case_are_tolerated_and_notes_are_cut() {
        let long = "x".repeat(1500);
        let text = format!(r#"{{"ratings":[{{"module":"TODO","rating":"2","notes":"{long}"}}]}}"#);
        let r = parse(&text, &used());
        assert_eq!(r[0].module, "todo");
        assert_eq!(r[0].rating, 2);
        assert_eq!(r[0].notes.as_ref().unwrap().chars().count(), NOTES_CHARS);
    }

    #[test]
    fn unreadable_answers_become_one_parse_row() {
        for text in ["Heute war alles super!", "{\"ratings\": 5}", "", "{{{{"] {
            let r = parse(text, &used());
            assert_eq!(r.len(), 1, "{text:?}");
            assert_eq!(r[0].module, PARSE_MODULE);
            assert_eq!(r[0].rating, 3);
            assert!(r[0].notes.as_ref().unwrap().contains("no JSON object"));
        }
    }

    /// Any JSON value a model might put where a rating belongs.
    fn any_rating() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            any::<f64>()
                .prop_filter("JSON has no NaN/inf", |f| f.is_finite())
                .prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| Value::from(f.to_string())),
            "[ 0-9.eE+-]{0,12}".prop_map(Value::from),
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
        ]
    }

    /// A rating object: a used module in any case, or an invented one; notes
    /// of any length (some far over the 1000-char cut) or none.
    fn any_entry() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let module = prop_oneof![
            proptest::sample::select(vec!["todo", "TODO", " journal ", "Mood", "invoices", ""])
                .prop_map(str::to_string),
            ".{0,12}",
        ];
        let notes = prop_oneof![
            Just(None),
            ".{0,40}".prop_map(Some),
            (".{1,3}", 300..700usize).prop_map(|(s, n)| Some(s.repeat(n))),
        ];
        (module, any_rating(), notes).prop_map(|(m, r, n)| {
            let mut o = serde_json::json!({"module": m, "rating": r});
            if let Some(n) = n {
                o["notes"] = Value::from(n);
            }
            o
        })
    }

    /// What every parse result must be: ratings in 1..=5, notes non-empty and
    /// at most 1000 chars, and either the single `__parse` row or rows only
    /// for used modules, at most one each.
    fn valid(rows: &[Rating], used: &[String]) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prop_assert;
        for r in rows {
            prop_assert!((1..=5).contains(&r.rating), "{r:?}");
            if let Some(n) = &r.notes {
                prop_assert!(!n.is_empty() && n.chars().count() <= NOTES_CHARS);
            }
        }
        if !(rows.len() == 1 && rows[0].module == PARSE_MODULE) {
            for (i, r) in rows.iter().enumerate() {
                prop_assert!(used.contains(&r.module), "{r:?}");
                prop_assert!(rows[..i].iter().all(|o| o.module != r.module), "{r:?}");
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_never_leaves_1_to_5(text in ".{0,400}", n in proptest::num::f64::ANY) {
            valid(&parse(&text, &used()), &used())?;
            let one = parse(&format!(r#"{{"ratings":[{{"module":"mood","rating":{n}}}]}}"#), &used());
            valid(&one, &used())?;
        }

        #[test]
        fn structured_answers_stay_in_1_to_5(
            entries in proptest::collection::vec(any_entry(), 0..8),
            wrap in 0..5usize,
            prose in "[^{}\\[\\]]{0,40}",
        ) {
            let body = serde_json::json!({"ratings": entries});
            let text = match wrap {
                0 => body.to_string(),
                1 => format!("```json\n{body:#}\n```"),
                2 => format!("{prose} {body} {prose}"),
                3 => serde_json::Value::Array(entries).to_string(),
                // A cut-off answer: never a panic either.
                _ => {
                    let s = serde_json::Value::Array(entries).to_string();
                    let cut = s.char_indices().nth(s.chars().count() * 2 / 3).map_or(s.len(), |(i, _)| i);
                    format!("{prose}{}", &s[..cut])
                }
            };
            valid(&parse(&text, &used()), &used())?;
        }
    }
}
