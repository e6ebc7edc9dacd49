//! The persona catalog: load, validate (every problem at once), list.
//!
//! The file is parsed into a `serde_json::Value` first and then walked by
//! hand, because serde's derive stops at the first error and an operator
//! editing a catalog wants the whole list in one go. Rules follow the
//! platform's contract ("Personas, the catalog, and passwords"); unknown
//! fields only warn, so a catalog written for a newer platform still loads.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How often a persona is due. Also decides how long run memory keeps a
/// zero-action persona from running again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    /// Once a day, every day; the default when a persona names none.
    #[default]
    Daily,
    /// Once a day, Monday to Friday.
    Weekdays,
    /// Once an hour.
    Hourly,
}

impl Cadence {
    /// The wire spelling, as the platform and the catalog write it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Cadence::Daily => "daily",
            Cadence::Weekdays => "weekdays",
            Cadence::Hourly => "hourly",
        }
    }

    /// Accepts the exact wire spelling only (case-sensitive, so `Daily` is
    /// reported in the catalog instead of guessed at).
    pub fn parse(s: &str) -> Option<Cadence> {
        match s {
            "daily" => Some(Cadence::Daily),
            "weekdays" => Some(Cadence::Weekdays),
            "hourly" => Some(Cadence::Hourly),
            _ => None,
        }
    }

    /// The nominal period (weekdays counts as daily).
    pub fn period(&self) -> Duration {
        match self {
            Cadence::Hourly => Duration::from_secs(3600),
            Cadence::Daily | Cadence::Weekdays => Duration::from_secs(24 * 3600),
        }
    }
}

/// One validated persona descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Persona {
    pub name: String,
    pub email: String,
    pub archetype: String,
    pub system_prompt: String,
    pub module_mix: BTreeMap<String, f64>,
    pub tick_cadence: Cadence,
}

/// Where the platform's personas live: every persona email must end with this,
/// because `.test` cannot bounce and the platform refuses anything else.
pub const EMAIL_DOMAIN: &str = "@mana.test";

/// A `systemPrompt` shorter than this many characters (not bytes) is refused,
/// as the platform refuses it.
pub const MIN_PROMPT_CHARS: usize = 20;

/// Fields a persona may carry; anything else is only warned about, so a newer
/// catalog still loads with an older binary.
const PERSONA_FIELDS: [&str; 6] = [
    "name",
    "email",
    "archetype",
    "systemPrompt",
    "moduleMix",
    "tickCadence",
];

/// Fields the catalog's top-level object may carry.
const TOP_FIELDS: [&str; 3] = ["$schema", "description", "personas"];

/// A loaded, fully valid catalog. Warnings are kept so the CLI can show them:
/// they never stop a run, but an operator should see a typo'd field name.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// Every persona, in file order.
    pub personas: Vec<Persona>,
    /// Things that are suspicious but not wrong (unknown fields, all-zero mix).
    pub warnings: Vec<Problem>,
}

impl Catalog {
    /// Finds a persona by email, case-insensitively, because emails are
    /// compared that way everywhere on the platform.
    pub fn by_email(&self, email: &str) -> Option<&Persona> {
        self.personas
            .iter()
            .find(|p| p.email.eq_ignore_ascii_case(email))
    }

    /// The distinct archetypes, sorted, so coverage can be checked and shown.
    pub fn archetypes(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<&str> =
            self.personas.iter().map(|p| p.archetype.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    }
}

/// One problem found in a catalog, located precisely enough that an operator
/// can fix it without guessing: which persona (index and, if known, email) and
/// which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `Some(i)` for `personas[i]`; `None` for the top level.
    pub index: Option<usize>,
    /// The persona's email when it has a string one (even an invalid one), so
    /// the line is recognisable.
    pub email: Option<String>,
    /// The field relative to the persona (`systemPrompt`, `moduleMix.todo`), or
    /// to the top level (`personas`, `description`); empty for the document
    /// itself or the whole persona entry.
    pub field: String,
    /// What is wrong, and what was found.
    pub message: String,
}

impl Problem {
    /// The full JSON-ish path, `personas[3].systemPrompt`, for machine use.
    pub fn path(&self) -> String {
        match (self.index, self.field.is_empty()) {
            (Some(i), true) => format!("personas[{i}]"),
            (Some(i), false) => format!("personas[{i}].{}", self.field),
            (None, true) => "(catalog)".to_string(),
            (None, false) => self.field.clone(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => {
                write!(f, "personas[{i}]")?;
                if let Some(e) = &self.email {
                    write!(f, " ({e})")?;
                }
                if self.field.is_empty() {
                    write!(f, ": {}", self.message)
                } else if self.email.is_some() {
                    write!(f, " {}: {}", self.field, self.message)
                } else {
                    write!(f, ".{}: {}", self.field, self.message)
                }
            }
            None => write!(f, "{}: {}", self.path(), self.message),
        }
    }
}

/// Why a catalog could not be used. Every variant names the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read (missing, permissions, not UTF-8).
    #[error("{}: cannot read catalog: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// The file is not JSON; line and column point at the first error.
    #[error("{}:{line}:{column}: catalog is not valid JSON: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The JSON does not describe a valid catalog; every problem is listed.
    #[error("{}: catalog is invalid ({} problem{}):{}", path.display(), problems.len(),
        if problems.len() == 1 { "" } else { "s" }, list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One problem per line, indented, for [`CatalogError::Invalid`]'s message.
fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

/// Reads and validates the catalog at `path`.
pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|e| CatalogError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&text, path)
}

/// Validates catalog text; `path` is only used in messages. Fails with every
/// problem at once, so one edit round fixes the whole file.
pub fn parse(text: &str, path: &Path) -> Result<Catalog, CatalogError> {
    // Editors on Windows like to write a BOM; it is not a reason to refuse.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(|e| CatalogError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: json_message(&e),
    })?;
    let (personas, errors, warnings) = validate_value(&value);
    if errors.is_empty() {
        Ok(Catalog { personas, warnings })
    } else {
        Err(CatalogError::Invalid {
            path: path.to_path_buf(),
            problems: errors,
        })
    }
}

/// serde_json's message without its trailing " at line L column C", which the
/// error carries separately.
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

/// Walks an already-parsed catalog and returns the valid personas, the errors
/// and the warnings. Separate from [`parse`] so a fuzzer can drive it with any
/// `Value`; it never panics. A persona with any error is left out of the list.
pub fn validate_value(v: &Value) -> (Vec<Persona>, Vec<Problem>, Vec<Problem>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut personas = Vec::new();

    let Some(top) = v.as_object() else {
        errors.push(top_problem(
            "",
            format!(
                "must be a JSON object with a \"personas\" array (got {})",
                describe(v)
            ),
        ));
        return (personas, errors, warnings);
    };

    for key in ["$schema", "description"] {
        if let Some(x) = top.get(key)
            && !x.is_string()
        {
            errors.push(top_problem(
                key,
                format!("must be a string (got {})", describe(x)),
            ));
        }
    }
    for key in top.keys() {
        if !TOP_FIELDS.contains(&key.as_str()) {
            warnings.push(top_problem(
                &clean(key, 80),
                unknown_message(key, &TOP_FIELDS),
            ));
        }
    }

    let list = match top.get("personas") {
        None => {
            errors.push(top_problem("personas", "is required".to_string()));
            return (personas, errors, warnings);
        }
        Some(Value::Array(list)) => list,
        Some(other) => {
            errors.push(top_problem(
                "personas",
                format!("must be an array (got {})", describe(other)),
            ));
            return (personas, errors, warnings);
        }
    };
    if list.is_empty() {
        errors.push(top_problem(
            "personas",
            "must contain at least one persona (got an empty array)".to_string(),
        ));
    }

    // Lower-cased email → first index that used it.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in list.iter().enumerate() {
        let before = errors.len();
        let persona = check_persona(i, item, &mut errors, &mut warnings);
        if let Some(Value::String(email)) = item.get("email") {
            let key = email.trim().to_lowercase();
            if !key.is_empty() {
                match seen.get(&key) {
                    Some(&first) => errors.push(Problem {
                        index: Some(i),
                        email: Some(shown(email)),
                        field: "email".to_string(),
                        message: format!(
                            "duplicate of personas[{first}] (emails are compared case-insensitively)"
                        ),
                    }),
                    None => {
                        seen.insert(key, i);
                    }
                }
            }
        }
        if errors.len() == before
            && let Some(p) = persona
        {
            personas.push(p);
        }
    }
    (personas, errors, warnings)
}

fn top_problem(field: &str, message: String) -> Problem {
    Problem {
        index: None,
        email: None,
        field: field.to_string(),
        message,
    }
}

/// The email as shown next to the index: cut so a pasted essay stays
/// readable, control characters escaped so every problem stays on one line.
fn shown(email: &str) -> String {
    clean(email, 80)
}

/// Text taken from the file, made safe for a one-line message: at most `max`
/// characters (marked with `…` when cut; not trimmed, since stray whitespace
/// may be the very problem) with control characters escaped (`\n`).
fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A string from the file, quoted, cut and escaped, for "got …" in messages.
fn quoted(s: &str, max: usize) -> String {
    format!("\"{}\"", clean(s, max))
}

/// Checks one persona entry, pushing its problems; returns the persona when
/// every field could be read (the caller still drops it if any error was
/// pushed, e.g. a duplicate email).
fn check_persona(
    i: usize,
    item: &Value,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Option<Persona> {
    let Some(obj) = item.as_object() else {
        errors.push(Problem {
            index: Some(i),
            email: None,
            field: String::new(),
            message: format!("must be an object (got {})", describe(item)),
        });
        return None;
    };
    let email_shown = obj.get("email").and_then(Value::as_str).map(shown);
    let problem = |field: &str, message: String| Problem {
        index: Some(i),
        email: email_shown.clone().filter(|e| !e.trim().is_empty()),
        field: field.to_string(),
        message,
    };

    for key in obj.keys() {
        if !PERSONA_FIELDS.contains(&key.as_str()) {
            warnings.push(problem(
                &clean(key, 80),
                unknown_message(key, &PERSONA_FIELDS),
            ));
        }
    }

    // A required string field: present, a string, not blank.
    let mut required_str = |field: &str| -> Option<String> {
        match obj.get(field) {
            None => {
                errors.push(problem(field, missing_message(field, obj)));
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.push(problem(field, "must not be empty".to_string()));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(problem(
                    field,
                    format!("must be a string (got {})", describe(other)),
                ));
                None
            }
        }
    };
    let name = required_str("name");
    let email = required_str("email");
    let archetype = required_str("archetype");
    let system_prompt = required_str("systemPrompt");

    // The platform stores emails in lower case and the runner signs in with
    // the stored one, so the password must be derived from the lower-cased
    // email at seed time too, or the persona is locked out at its first tick.
    let email = email.and_then(|e| {
        let lower = e.to_lowercase();
        if let Some(msg) = email_problem(&lower) {
            errors.push(problem("email", msg));
            return None;
        }
        if lower != e {
            warnings.push(problem(
                "email",
                format!(
                    "{} is used as {lower}: the platform stores emails in lower case",
                    quoted(&e, 80)
                ),
            ));
        }
        Some(lower)
    });

    let system_prompt = system_prompt.and_then(|s| {
        let n = s.chars().count();
        if n < MIN_PROMPT_CHARS {
            errors.push(problem(
                "systemPrompt",
                format!("must be at least {MIN_PROMPT_CHARS} characters (got {n})"),
            ));
            None
        } else {
            Some(s)
        }
    });

    let module_mix = match obj.get("moduleMix") {
        None => {
            errors.push(problem("moduleMix", missing_message("moduleMix", obj)));
            None
        }
        Some(Value::Object(m)) if m.is_empty() => {
            errors.push(problem(
                "moduleMix",
                "must name at least one module (got an empty object)".to_string(),
            ));
            None
        }
        Some(Value::Object(m)) => {
            let mut mix = BTreeMap::new();
            let mut ok = true;
            for (module, w) in m {
                let field = format!("moduleMix.{}", clean(module, 80));
                if module.trim().is_empty() {
                    errors.push(problem(&field, "module name must not be empty".to_string()));
                    ok = false;
                    continue;
                }
                match w.as_f64() {
                    Some(x) if x.is_finite() && x >= 0.0 => {
                        mix.insert(module.clone(), x);
                    }
                    Some(x) => {
                        errors.push(problem(
                            &field,
                            format!("weight must be a finite number ≥ 0 (got {x})"),
                        ));
                        ok = false;
                    }
                    None => {
                        errors.push(problem(
                            &field,
                            format!("weight must be a number (got {})", describe(w)),
                        ));
                        ok = false;
                    }
                }
            }
            if ok && mix.values().all(|w| *w == 0.0) {
                warnings.push(problem(
                    "moduleMix",
                    "every weight is 0, so no module is preferred".to_string(),
                ));
            }
            ok.then_some(mix)
        }
        Some(other) => {
            errors.push(problem(
                "moduleMix",
                format!(
                    "must be an object of module → weight (got {})",
                    describe(other)
                ),
            ));
            None
        }
    };

    let tick_cadence = match obj.get("tickCadence") {
        None => Some(Cadence::Daily),
        Some(Value::String(s)) => match Cadence::parse(s) {
            Some(c) => Some(c),
            None => {
                errors.push(problem(
                    "tickCadence",
                    format!(
                        "must be one of daily|weekdays|hourly (got {})",
                        quoted(s, 40)
                    ),
                ));
                None
            }
        },
        Some(other) => {
            errors.push(problem(
                "tickCadence",
                format!(
                    "must be one of daily|weekdays|hourly (got {})",
                    describe(other)
                ),
            ));
            None
        }
    };

    Some(Persona {
        name: name?,
        email: email?,
        archetype: archetype?,
        system_prompt: system_prompt?,
        module_mix: module_mix?,
        tick_cadence: tick_cadence?,
    })
}

/// Why `email` is not an acceptable persona email, or `None` when it is.
/// Deliberately simple (one `@`, non-empty local part, no whitespace, our
/// domain): the platform is the real judge, this catches typos early.
fn email_problem(email: &str) -> Option<String> {
    let got = quoted(email, 80);
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("must not contain whitespace (got {got})"));
    }
    let ats = email.matches('@').count();
    if ats != 1 {
        return Some(format!(
            "must be a valid email with exactly one @ (got {got})"
        ));
    }
    if email.starts_with('@') {
        return Some(format!(
            "must have a non-empty part before the @ (got {got})"
        ));
    }
    if !email.ends_with(EMAIL_DOMAIN) {
        return Some(format!("must end with {EMAIL_DOMAIN} (got {got})"));
    }
    None
}

/// "is required", plus a hint when an unknown key looks like the missing one
/// (`system_prompt`, `SystemPrompt`), since that is the usual cause.
fn missing_message(field: &str, obj: &serde_json::Map<String, Value>) -> String {
    let target = normalise(field);
    match obj
        .keys()
        .find(|k| k.as_str() != field && normalise(k) == target)
    {
        Some(k) => format!(
            "is required (found {} — did you mean \"{field}\"?)",
            quoted(k, 40)
        ),
        None => "is required".to_string(),
    }
}

/// The warning text for an unknown key, with a suggestion when it is a
/// near-spelling of a known one.
fn unknown_message(key: &str, known: &[&str]) -> String {
    let n = normalise(key);
    match known.iter().find(|k| normalise(k) == n) {
        Some(k) => format!("unknown field, ignored (did you mean \"{k}\"?)"),
        None => "unknown field, ignored".to_string(),
    }
}

/// Lower case without `_`, `-`, `$`: `system_prompt` ~ `systemPrompt`.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | '$'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A JSON value's kind plus a short rendering, for "got …" in messages.
fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => return "an array".to_string(),
        Value::Object(_) => return "an object".to_string(),
    };
    format!("{kind} {}", clean(&v.to_string(), 40))
}

impl Persona {
    /// The moduleMix keys, highest weight first, ties by name: what the main
    /// prompt's `{{modules}}` lists, so the LLM favours what the persona
    /// favours. Zero-weight modules are included last, as the catalog names them.
    pub fn preferred_modules(&self) -> Vec<String> {
        preferred_modules(&self.module_mix)
    }
}

/// A module mix's keys, highest weight first, ties by name (the catalog's
/// view and the runner's prompt agree because both call this).
pub fn preferred_modules(mix: &BTreeMap<String, f64>) -> Vec<String> {
    let mut mods: Vec<(&String, f64)> = mix.iter().map(|(k, w)| (k, *w)).collect();
    mods.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    mods.into_iter().map(|(k, _)| k.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        assert_eq!(email_problem("persona.a@mana.test"), None);
        assert_eq!(email_problem("A.B+c@mana.test"), None);
        for bad in [
            "a@mana.test ",
            "a b@mana.test",
            "@mana.test",
            "a@@mana.test",
        ] {
            assert!(email_problem(bad).is_some(), "{bad}");
        }
        // Case matters for the domain: the platform checks the suffix as is.
        assert!(email_problem("a@MANA.TEST").unwrap().contains("end with"));
    }

    #[test]
    fn clean_keeps_one_line_and_cuts() {
        assert_eq!(clean("a\nb\u{0}", 80), "a\\nb\\0");
        assert_eq!(clean("äöüß", 2), "äö…");
        assert_eq!(clean(" x ", 80), " x ");
        assert_eq!(quoted("x@mana.test\n", 80), "\"x@mana.test\\n\"");
    }

    #[test]
    fn normalise_matches_spelling_variants() {
        assert_eq!(normalise("system_prompt"), normalise("systemPrompt"));
        assert_eq!(normalise("Tick-Cadence"), normalise("tickCadence"));
        assert_eq!(normalise("schema"), normalise("$schema"));
        assert_ne!(normalise("module"), normalise("moduleMix"));
    }

    #[test]
    fn json_message_drops_position() {
        let e = serde_json::from_str::<Value>("{\n,").unwrap_err();
        let m = json_message(&e);
        assert!(!m.contains("line"), "{m}");
        assert!(!m.is_empty());
    }

    #[test]
    fn problem_display_variants() {
        let p = |index, email: Option<&str>, field: &str| Problem {
            index,
            email: email.map(String::from),
            field: field.into(),
            message: "m".into(),
        };
        assert_eq!(
            p(Some(3), Some("e@mana.test"), "name").to_string(),
            "personas[3] (e@mana.test) name: m"
        );
        assert_eq!(p(Some(3), None, "name").to_string(), "personas[3].name: m");
        assert_eq!(p(Some(3), None, "").to_string(), "personas[3]: m");
        assert_eq!(
            p(Some(3), Some("e@mana.test"), "").to_string(),
            "personas[3] (e@mana.test): m"
        );
        assert_eq!(p(None, None, "personas").to_string(), "personas: m");
        assert_eq!(p(None, None, "").to_string(), "(catalog): m");
        assert_eq!(
            p(Some(1), Some("x"), "moduleMix.todo").path(),
            "personas[1].moduleMix.todo"
        );
    }
}
