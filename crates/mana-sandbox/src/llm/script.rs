//! The scripted persona: what it answers, whichever API asked.
//!
//! A main turn plays a short day with the tools the request offers (mostly
//! those of the modules the first user message names; as many calls as its
//! "A to B tools" asks for, 3–8 when it names none), one or two calls per
//! turn with arguments made up from each schema (`args`), ids from earlier
//! results, a configurable share of deliberately broken arguments, then a
//! one-line summary. A request without tools is the rating turn: a JSON
//! verdict on the modules the prompt lists, in one of the framings real
//! models use (bare, fenced, with prose around it).
//!
//! Everything is derived from the seed and the request, so the same
//! conversation replays the same way. Directives in the system prompt
//! (`[sandbox:…]`) pin behaviour exactly for tests:
//! `tools=N` (exactly N valid calls, one per turn), `no-tools`,
//! `parallel-error` (two calls at once, the second invalid), `max-tokens`
//! (a tool call cut off), `rating-garbage`, `rating-out-of-range`,
//! `call=NAME` (the first turn calls NAME, offered or not).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Api;
use super::args::{self, Known};

/// The Mana modules the rating turn looks for when the prompt has no list.
pub const MODULES: &[&str] = &[
    "todo",
    "journal",
    "notes",
    "mood",
    "habits",
    "calendar",
    "contacts",
    "articles",
    "dreams",
    "library",
    "goals",
    "newsResearch",
    "invoices",
    "spaces",
    "augur",
];

/// One tool call of the conversation so far and what came back.
#[derive(Debug, Default)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub input: Value,
    pub result: Option<String>,
    pub is_error: bool,
}

/// What the scripted model needs to know about a request, from either API.
#[derive(Debug, Default)]
pub struct Convo {
    pub model: String,
    pub system: String,
    /// (name, input schema)
    pub tools: Vec<(String, Value)>,
    pub message_count: usize,
    pub assistant_turns: usize,
    pub calls: Vec<Call>,
    pub first_user_text: String,
    pub last_user_text: String,
    pub stream: bool,
    pub include_usage: bool,
}

impl Convo {
    /// Remembers a user message's text: the first one (before any assistant
    /// turn) names the preferred modules, the last one is what to answer.
    pub fn user_text(&mut self, t: String) {
        if self.first_user_text.is_empty() && self.assistant_turns == 0 {
            self.first_user_text = t.clone();
        }
        if !t.is_empty() {
            self.last_user_text = t;
        }
    }

    /// Attaches a result to the call with `id`.
    pub fn result(&mut self, id: &str, text: String, is_error: bool) {
        if let Some(c) = self.calls.iter_mut().find(|c| c.id == id) {
            c.result = Some(text);
            c.is_error = is_error;
        }
    }
}

/// Text of a content value: a string, or the `text` blocks of an array.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn directive(system: &str, name: &str) -> bool {
    system.contains(&format!("[sandbox:{name}]"))
}

/// `[sandbox:call=NAME]`: the first turn calls the LLM-side tool NAME with
/// `{}`, offered or not — a model that calls a tool it was never given.
fn directive_call(system: &str) -> Option<&str> {
    let start = system.find("[sandbox:call=")? + "[sandbox:call=".len();
    let rest = &system[start..];
    Some(rest[..rest.find(']')?].trim())
}

fn directive_tools(system: &str) -> Option<usize> {
    let start = system.find("[sandbox:tools=")? + "[sandbox:tools=".len();
    let rest = &system[start..];
    let end = rest.find(']')?;
    rest[..end].trim().parse().ok()
}

/// How many calls the day's prompt asks for: the first "A to B" / "A bis B"
/// of small numbers in the first user message (the runner's templates say
/// "use roughly {{min_tools}} to {{max_tools}} tools", "Nutze ungefähr … bis
/// … Werkzeuge"), which a real model follows roughly and the scripted one
/// exactly; 3–8 when it names none. Why: a shorter day is the cost lever an
/// operator has (`DAY_TOOLS_MAX`), and it can only be measured if the model
/// plays the day it is asked for.
fn day_range(prompt: &str) -> (usize, usize) {
    const DEFAULT: (usize, usize) = (3, 8);
    let words: Vec<&str> = prompt
        .split(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == '.')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(3)
        .find_map(|w| {
            let (lo, hi) = (w[0].parse::<usize>().ok()?, w[2].parse::<usize>().ok()?);
            (matches!(w[1], "to" | "bis") && 1 <= lo && lo <= hi && hi <= 50).then_some((lo, hi))
        })
        .unwrap_or(DEFAULT)
}

pub fn rng_for(seed: u64, parts: &[&[u8]]) -> StdRng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    StdRng::seed_from_u64(u64::from_le_bytes(b))
}

#[derive(Debug, Clone)]
pub enum Piece {
    Text(String),
    Tool {
        id: String,
        name: String,
        input: Value,
        /// Cut the JSON mid-way (the max-tokens directive).
        truncate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    EndTurn,
    ToolUse,
    MaxTokens,
}

#[derive(Debug)]
pub struct Reply {
    pub kind: &'static str,
    pub pieces: Vec<Piece>,
    pub stop: Stop,
}

impl Reply {
    /// Output tokens: ~4 characters each, at least one.
    pub fn output_tokens(&self) -> u64 {
        let bytes: usize = self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Tool { name, input, .. } => name.len() + input.to_string().len(),
            })
            .sum();
        super::billing::tokens_of(bytes).max(1)
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

const SUMMARIES: &[&str] = &[
    "That covers today: I captured what mattered and tidied up a few loose ends.",
    "Done for now. The essentials are logged and I'll pick up the rest tomorrow.",
    "All set — I went through my usual routine and everything important is recorded.",
    "Good session. I updated what I needed and I'm wrapping up for the day.",
];

const OPENERS: &[&str] = &[
    "Let me take care of that.",
    "First, I'll get this written down.",
    "Okay, next thing on my list.",
    "I'll check on this now.",
];

fn summary(rng: &mut StdRng) -> Reply {
    Reply {
        kind: "main",
        pieces: vec![Piece::Text(
            SUMMARIES[rng.random_range(0..SUMMARIES.len())].to_string(),
        )],
        stop: Stop::EndTurn,
    }
}

fn tool_id(api: Api, convo: &Convo, i: usize, rng: &mut StdRng) -> String {
    let prefix = match api {
        Api::Anthropic => "toolu_sb",
        Api::OpenAi => "call_sb",
    };
    format!(
        "{prefix}{:03}{i}{:012x}",
        convo.message_count,
        rng.random::<u64>() >> 16
    )
}

/// What a persona's day can do next: the tools whose arguments can be made
/// now (an id-taking tool only once an earlier result gave an id), the
/// modules the first user message names first.
struct Options {
    preferred: Vec<usize>,
    others: Vec<usize>,
}

fn options(convo: &Convo, known: &Known, rng: &mut StdRng) -> Options {
    let mentioned = words(&convo.first_user_text);
    let mut preferred = Vec::new();
    let mut others = Vec::new();
    for (i, (name, schema)) in convo.tools.iter().enumerate() {
        let module = args::module_of(name);
        // `spaces` is bookkeeping, not a day's work.
        if module == "spaces" || args::fabricate(schema, module, known, rng).is_none() {
            continue;
        }
        if mentioned.contains(&module.to_lowercase()) {
            preferred.push(i);
        } else {
            others.push(i);
        }
    }
    Options { preferred, others }
}

/// Ids and uses learnt from the calls so far.
fn known(convo: &Convo) -> Known {
    let mut k = Known::default();
    for c in &convo.calls {
        k.learn(&c.name, &c.input, c.result.as_deref(), c.is_error);
    }
    k
}

/// How the persona plays: the seed and the share of invalid arguments.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub seed: u64,
    pub invalid_share: f64,
}

pub fn main_turn(api: Api, convo: &Convo, style: Style) -> Reply {
    let sys = convo.system.as_str();
    let mut rng = rng_for(
        style.seed,
        &[sys.as_bytes(), &(convo.message_count as u64).to_le_bytes()],
    );
    let first = convo.message_count <= 1;
    if let Some(name) = directive_call(sys).filter(|_| first) {
        return Reply {
            kind: "main",
            pieces: vec![Piece::Tool {
                id: tool_id(api, convo, 0, &mut rng),
                name: name.to_string(),
                input: json!({}),
                truncate: false,
            }],
            stop: Stop::ToolUse,
        };
    }
    if directive(sys, "no-tools") || convo.tools.is_empty() {
        return summary(&mut rng);
    }
    let known = known(convo);
    let opts = options(convo, &known, &mut rng);
    let pool: Vec<usize> = if opts.preferred.is_empty() {
        opts.others.clone()
    } else {
        opts.preferred.clone()
    };
    if pool.is_empty() {
        return summary(&mut rng);
    }
    let make = |i: usize, rng: &mut StdRng| -> (String, Value) {
        let (name, schema) = &convo.tools[i];
        let input = args::fabricate(schema, args::module_of(name), &known, rng)
            .unwrap_or_else(|| json!({}));
        (name.clone(), input)
    };
    if directive(sys, "max-tokens") && first {
        let (name, mut input) = make(pool[rng.random_range(0..pool.len())], &mut rng);
        if input.as_object().is_some_and(|o| o.is_empty()) {
            input = json!({"note": "a long note that never ends"});
        }
        return Reply {
            kind: "main",
            pieces: vec![
                Piece::Text("Let me write all of this down.".into()),
                Piece::Tool {
                    id: tool_id(api, convo, 0, &mut rng),
                    name,
                    input,
                    truncate: true,
                },
            ],
            stop: Stop::MaxTokens,
        };
    }
    if directive(sys, "parallel-error") {
        if !first {
            return summary(&mut rng);
        }
        let (name, valid) = make(pool[rng.random_range(0..pool.len())], &mut rng);
        // The second call: the first tool (preferred ones first) whose
        // arguments can be broken.
        let (bad_name, bad) = pool
            .iter()
            .chain(&opts.others)
            .find_map(|&i| {
                let (n, v) = make(i, &mut rng);
                args::invalidate(&convo.tools[i].1, &v).map(|b| (n, b))
            })
            .unwrap_or_else(|| make(pool[0], &mut rng));
        return Reply {
            kind: "main",
            pieces: vec![
                Piece::Text("I'll do these two at once.".into()),
                Piece::Tool {
                    id: tool_id(api, convo, 0, &mut rng),
                    name,
                    input: valid,
                    truncate: false,
                },
                Piece::Tool {
                    id: tool_id(api, convo, 1, &mut rng),
                    name: bad_name,
                    input: bad,
                    truncate: false,
                },
            ],
            stop: Stop::ToolUse,
        };
    }
    let exact = directive_tools(sys);
    let target = exact.unwrap_or_else(|| {
        let (lo, hi) = day_range(&convo.first_user_text);
        rng_for(style.seed, &[sys.as_bytes()]).random_range(lo..=hi)
    });
    if convo.calls.len() >= target {
        return summary(&mut rng);
    }
    let remaining = target - convo.calls.len();
    let n = if exact.is_none() && remaining >= 2 && rng.random_ratio(1, 4) {
        2
    } else {
        1
    };
    let mut pieces = Vec::new();
    if rng.random_bool(0.5) {
        pieces.push(Piece::Text(
            OPENERS[rng.random_range(0..OPENERS.len())].to_string(),
        ));
    }
    // Mostly the named modules; at most once a day something else, as a
    // person wanders (never under an exact directive).
    let mentioned = words(&convo.first_user_text);
    let mut wandered = convo
        .calls
        .iter()
        .any(|c| !mentioned.contains(&args::module_of(&c.name).to_lowercase()));
    // A day spreads over the modules: a module not used yet today comes
    // first, then any (so `tools=N` with N ≥ the named modules uses each).
    let mut used: std::collections::HashSet<String> = convo
        .calls
        .iter()
        .map(|c| args::module_of(&c.name).to_string())
        .collect();
    for i in 0..n {
        let wander = exact.is_none()
            && !wandered
            && !opts.preferred.is_empty()
            && !opts.others.is_empty()
            && rng.random_ratio(1, 6);
        wandered |= wander;
        let from = if wander { &opts.others } else { &pool };
        let fresh: Vec<usize> = from
            .iter()
            .copied()
            .filter(|&t| !used.contains(args::module_of(&convo.tools[t].0)))
            .collect();
        let from = if fresh.is_empty() { from } else { &fresh };
        let tool = from[rng.random_range(0..from.len())];
        used.insert(args::module_of(&convo.tools[tool].0).to_string());
        let (name, mut input) = make(tool, &mut rng);
        if exact.is_none()
            && style.invalid_share > 0.0
            && rng.random_bool(style.invalid_share.min(1.0))
            && let Some(bad) = args::invalidate(&convo.tools[tool].1, &input)
        {
            input = bad;
        }
        pieces.push(Piece::Tool {
            id: tool_id(api, convo, i, &mut rng),
            name,
            input,
            truncate: false,
        });
    }
    Reply {
        kind: "main",
        pieces,
        stop: Stop::ToolUse,
    }
}

const NOTES: &[&str] = &[
    "Quick to use, did what I needed.",
    "Works, but a few steps felt clumsy.",
    "Handy; I'd like better search.",
    "Solid today, no surprises.",
    "Confusing error when I got something wrong.",
];

/// The modules the rating prompt asks about: the list in the first
/// parentheses after the word module (the runner's templates say "module
/// you used today ({{used_modules}})", "Modul, das du heute benutzt hast
/// (…)"), else the known module names it mentions, in its order.
fn rated_modules(prompt: &str) -> Vec<String> {
    if let Some(start) = prompt.find('(')
        && prompt[..start].to_lowercase().contains("modul")
        && let Some(len) = prompt[start + 1..].find(')')
    {
        let list: Vec<String> = prompt[start + 1..start + 1 + len]
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        if !list.is_empty()
            && list.iter().all(|m| {
                !m.is_empty()
                    && m.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        {
            return list;
        }
    }
    let prompt_words = words(prompt);
    let mut modules: Vec<&str> = MODULES
        .iter()
        .copied()
        .filter(|m| prompt_words.contains(&m.to_lowercase()))
        .collect();
    modules.sort_by_key(|m| {
        prompt_words
            .iter()
            .position(|w| *w == m.to_lowercase())
            .unwrap_or(usize::MAX)
    });
    modules.into_iter().map(String::from).collect()
}

pub fn rating_turn(convo: &Convo, seed: u64) -> Reply {
    let sys = convo.system.as_str();
    let mut rng = rng_for(
        seed,
        &[
            sys.as_bytes(),
            b"rating",
            &(convo.message_count as u64).to_le_bytes(),
        ],
    );
    let text_reply = |t: String| Reply {
        kind: "rating",
        pieces: vec![Piece::Text(t)],
        stop: Stop::EndTurn,
    };
    if directive(sys, "rating-garbage") {
        return text_reply(
            "Honestly it was a fine day overall; nothing stood out enough to score.".into(),
        );
    }
    let modules = rated_modules(&convo.last_user_text);
    let mut ratings: Vec<Value> = Vec::new();
    if directive(sys, "rating-out-of-range") {
        let odd = [json!(7), json!(0), json!(3.6)];
        for (m, r) in modules.iter().zip(odd.iter()) {
            ratings.push(json!({"module": m, "rating": r, "notes": "out of range on purpose"}));
        }
        ratings.push(json!({"module": "invoices", "rating": 4, "notes": "not asked about"}));
    } else {
        for m in &modules {
            ratings.push(json!({
                "module": m,
                "rating": rng.random_range(1..=5),
                "notes": NOTES[rng.random_range(0..NOTES.len())],
            }));
        }
    }
    let body = json!({ "ratings": ratings });
    let text = match rng.random_range(0..3) {
        0 => body.to_string(),
        1 => format!(
            "```json\n{}\n```",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        ),
        _ => format!("Here is how today felt: {body} That's my honest take."),
    };
    text_reply(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_as_long_as_the_prompt_asks() {
        let en = "Today is Monday, 2026-11-23.\n\nYou have your Mana app at hand through the tools provided. Spend a short day in it the way Anna really would: use roughly 2 to 4 tools, preferably in these modules: todo, mood.";
        assert_eq!(day_range(en), (2, 4));
        let de = "Heute ist Montag, der 2026-11-23.\n\nNutze ungefähr 1 bis 3 Werkzeuge, am liebsten in diesen Modulen: todo.";
        assert_eq!(day_range(de), (1, 3));
        // No range, a date's numbers, or a range no day has: the default.
        assert_eq!(day_range("Heute ist der 2026-11-23."), (3, 8));
        assert_eq!(day_range("from 5 to 2 tools"), (3, 8));
        assert_eq!(day_range("use 3 to 500 tools"), (3, 8));
    }

    #[test]
    fn directives_parse() {
        assert_eq!(directive_tools("x [sandbox:tools=4] y"), Some(4));
        assert_eq!(directive_tools("x"), None);
        assert_eq!(directive_call("x [sandbox:call=me_x] y"), Some("me_x"));
        assert!(directive("a [sandbox:no-tools]", "no-tools"));
    }

    #[test]
    fn rated_modules_come_from_the_prompts_list() {
        assert_eq!(
            rated_modules("Rate each module you used today (todo, me, augur) on a scale"),
            ["todo", "me", "augur"]
        );
        assert_eq!(
            rated_modules("Rate these (really) modules: journal and todo."),
            ["journal", "todo"]
        );
        assert_eq!(
            rated_modules("Bewerte jedes Modul, das du heute benutzt hast (mood, habits), auf"),
            ["mood", "habits"]
        );
        assert_eq!(
            rated_modules("Rate these modules from 1 to 5: todo, journal, habits."),
            ["todo", "journal", "habits"]
        );
    }
}
