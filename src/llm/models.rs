//! Models with a known retirement date, and what to use instead.
//!
//! Why a table in the binary: a retired model fails every request, so a
//! runner left on one stops spending LLM money — and stops exercising the
//! platform — without anyone noticing. The tick and the daemon warn at start,
//! `doctor` reports it. Dates are Anthropic's model-deprecations page
//! (Claude API); update the table when it changes.

use chrono::NaiveDate;

/// `(model id, retirement date, suggested replacement)`. Both the alias and
/// the dated id are listed where the API accepts both.
const RETIRING: &[(&str, &str, &str)] = &[
    ("claude-sonnet-4-5", "2026-11-30", "claude-sonnet-4-6"),
    (
        "claude-sonnet-4-5-20250929",
        "2026-11-30",
        "claude-sonnet-4-6",
    ),
    ("claude-opus-4-1", "2026-08-05", "claude-opus-4-7"),
    ("claude-opus-4-1-20250805", "2026-08-05", "claude-opus-4-7"),
    ("claude-sonnet-4-0", "2026-06-15", "claude-sonnet-4-6"),
    (
        "claude-sonnet-4-20250514",
        "2026-06-15",
        "claude-sonnet-4-6",
    ),
    ("claude-opus-4-0", "2026-06-15", "claude-opus-4-7"),
    ("claude-opus-4-20250514", "2026-06-15", "claude-opus-4-7"),
    (
        "claude-3-7-sonnet-latest",
        "2026-02-19",
        "claude-sonnet-4-6",
    ),
    (
        "claude-3-7-sonnet-20250219",
        "2026-02-19",
        "claude-sonnet-4-6",
    ),
];

/// When `model` is (or was) retired and what replaces it; `None` for a model
/// not on the list.
pub fn deprecation(model: &str) -> Option<(NaiveDate, &'static str)> {
    RETIRING
        .iter()
        .find(|(id, _, _)| id.eq_ignore_ascii_case(model.trim()))
        .map(|(_, date, repl)| {
            (
                NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("table dates are valid"),
                *repl,
            )
        })
}

/// The operator's sentence for a model on the list, as of `today`.
pub fn deprecation_warning(model: &str, today: NaiveDate) -> Option<String> {
    let (date, repl) = deprecation(model)?;
    Some(if today >= date {
        format!(
            "LLM model {model} was retired on {date}: every request to it fails; set LLM_MODEL={repl}"
        )
    } else {
        format!(
            "LLM model {model} is deprecated and will be retired on {date} ({} days); set LLM_MODEL={repl}",
            (date - today).num_days()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_default_is_on_the_list_and_the_new_one_is_not() {
        let (date, repl) = deprecation("claude-sonnet-4-5").unwrap();
        assert_eq!(date.to_string(), "2026-11-30");
        assert_eq!(repl, super::super::anthropic::DEFAULT_MODEL);
        assert!(deprecation(super::super::anthropic::DEFAULT_MODEL).is_none());
        let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let w = deprecation_warning("claude-sonnet-4-5", today).unwrap();
        assert!(w.contains("2026-11-30") && w.contains("6 days"), "{w}");
        let w = deprecation_warning("claude-sonnet-4-20250514", today).unwrap();
        assert!(w.contains("was retired on 2026-06-15"), "{w}");
        for (id, date, _) in RETIRING {
            assert!(deprecation(id).is_some());
            assert!(NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok());
        }
    }
}
