//! Trends: which module is rated worse week after week, which tool fails
//! more. The answer to "module X has been rated worse for 3 weeks".
//!
//! Rules (the weeks are the report window's, the last one ending now):
//! - a module is flagged when its weekly mean rating **fell in each of the
//!   last 3 weeks** (four weeks, each lower than the one before), or when the
//!   last week's mean is **≥ 0.75 below its baseline**, the mean of every
//!   rating of the (up to) 4 weeks before it;
//! - a tool is flagged likewise when its weekly error rate **rose in each of
//!   the last 3 weeks**, or the last week's rate is **≥ 15 points above** its
//!   baseline.
//!
//! A week counts only with at least [`MIN_RATINGS`] ratings (or
//! [`MIN_CALLS`] calls): three ratings of one bored persona are no trend.
//! Use `--since 35d` for a full 4-week baseline before the last week.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{ModuleReport, Note, Notes, Week, worst};
use super::stats::round;
use crate::state::summary::rows::{NoteText, Row};

pub const MIN_RATINGS: usize = 3;
pub const MIN_CALLS: usize = 5;
/// A drop of the last week's mean against the baseline that is flagged.
pub const RATING_DROP: f64 = 0.75;
/// A rise of the last week's error rate against the baseline that is flagged.
pub const ERROR_RISE: f64 = 0.15;
/// Weeks of baseline before the last week.
pub const BASELINE_WEEKS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Fell (ratings) or rose (errors) in each of the last 3 weeks.
    ThreeWeeksInARow,
    /// The last week against the baseline of the weeks before.
    AgainstBaseline,
}

/// One week of evidence.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub week: usize,
    pub start: chrono::DateTime<chrono::Utc>,
    pub count: usize,
    /// Mean rating, or error rate; `None` below the minimum count.
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// The module (rating trends) or the MCP tool (error trends).
    pub subject: String,
    pub rules: Vec<Rule>,
    pub weeks: Vec<Point>,
    pub baseline: Option<f64>,
    pub last: f64,
    /// last − baseline (negative for a rating drop), or last − first of the
    /// three-week run when there is no baseline.
    pub change: f64,
    /// The lowest-rated notes of the last week (rating trends only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub example_notes: Vec<Note>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trends {
    pub modules: Vec<Flag>,
    pub tools: Vec<Flag>,
}

/// Per week: (sum, count) of values; `falling` says which direction is bad.
fn judge(
    subject: &str,
    weeks: &[Week],
    sums: &[(f64, usize)],
    min: usize,
    falling: bool,
) -> Option<Flag> {
    let n = weeks.len();
    let value = |i: usize| {
        let (s, c) = sums[i];
        (c >= min).then(|| s / c as f64)
    };
    let worse = |a: f64, b: f64| if falling { b < a } else { b > a };
    let last = value(n - 1)?;
    let mut rules = Vec::new();
    let run = n >= 4
        && (n - 4..n - 1).all(|i| match (value(i), value(i + 1)) {
            (Some(a), Some(b)) => worse(a, b),
            _ => false,
        });
    if run {
        rules.push(Rule::ThreeWeeksInARow);
    }
    let base: Vec<usize> = (n.saturating_sub(1 + BASELINE_WEEKS)..n - 1)
        .filter(|i| sums[*i].1 >= min)
        .collect();
    let baseline = (!base.is_empty()).then(|| {
        let (s, c) = base
            .iter()
            .fold((0.0, 0), |(s, c), i| (s + sums[*i].0, c + sums[*i].1));
        s / c as f64
    });
    if let Some(b) = baseline {
        let bad = if falling {
            last <= b - RATING_DROP
        } else {
            last >= b + ERROR_RISE
        };
        if bad {
            rules.push(Rule::AgainstBaseline);
        }
    }
    if rules.is_empty() {
        return None;
    }
    let change = match baseline {
        Some(b) => last - b,
        None => last - value(n - 4).unwrap_or(last),
    };
    Some(Flag {
        subject: subject.to_string(),
        rules,
        weeks: (0..n)
            .map(|i| Point {
                week: i,
                start: weeks[i].start,
                count: sums[i].1,
                value: value(i).map(|v| round(v, 3)),
            })
            .collect(),
        baseline: baseline.map(|b| round(b, 3)),
        last: round(last, 3),
        change: round(change, 3),
        example_notes: Vec::new(),
    })
}

fn week_of(weeks: &[Week], t: chrono::DateTime<chrono::Utc>) -> Option<usize> {
    weeks.iter().position(|w| t >= w.start && t < w.end)
}

/// Finds the flagged modules and tools; `notes` reads the example notes.
pub fn find(weeks: &[Week], modules: &[ModuleReport], all: &[Row], notes: &Notes) -> Trends {
    if weeks.is_empty() {
        return Trends::default();
    }
    let mut out = Trends::default();
    for m in modules {
        let sums: Vec<(f64, usize)> = m
            .weekly
            .iter()
            .map(|w| (w.mean.unwrap_or(0.0) * w.count as f64, w.count))
            .collect();
        if let Some(mut f) = judge(&m.module, weeks, &sums, MIN_RATINGS, true) {
            let last = weeks.len() - 1;
            let candidates = all
                .iter()
                .enumerate()
                .filter(|(_, s)| week_of(weeks, s.started_at) == Some(last))
                .flat_map(|(row, s)| {
                    s.ratings
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| *r.module == *m.module && r.notes != NoteText::None)
                        .map(move |(idx, r)| (r.rating, s.started_at, row, idx))
                })
                .collect();
            f.example_notes = worst(candidates, 3, all, notes);
            out.modules.push(f);
        }
    }
    // Tools: weekly error rates.
    let mut tools: BTreeMap<&str, Vec<(f64, usize)>> = BTreeMap::new();
    for s in all {
        let Some(w) = week_of(weeks, s.started_at) else {
            continue;
        };
        for c in &s.calls {
            let v = tools
                .entry(&*c.tool)
                .or_insert_with(|| vec![(0.0, 0); weeks.len()]);
            v[w].0 += if c.ok { 0.0 } else { 1.0 };
            v[w].1 += 1;
        }
    }
    for (tool, sums) in tools {
        if let Some(f) = judge(tool, weeks, &sums, MIN_CALLS, false) {
            out.tools.push(f);
        }
    }
    out
}
