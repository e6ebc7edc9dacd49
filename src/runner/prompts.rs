//! The user messages of a persona tick, from templates operators can edit
//! without rebuilding (`--prompts DIR`, same layout as `personas/`). The
//! repository's templates are compiled in as the default.

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};

/// Built-in copies of `personas/{de,en}/{main,rating}.md`.
const BUILTIN: &[(&str, &str, &str)] = &[
    ("de", "main", include_str!("../../personas/de/main.md")),
    ("de", "rating", include_str!("../../personas/de/rating.md")),
    ("en", "main", include_str!("../../personas/en/main.md")),
    ("en", "rating", include_str!("../../personas/en/rating.md")),
];

const PLACEHOLDERS: &[&str] = &[
    "date",
    "weekday",
    "name",
    "modules",
    "min_tools",
    "max_tools",
    "used_modules",
];

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt template {path}: {message}")]
    Template { path: PathBuf, message: String },
}

/// The two templates of one language.
#[derive(Debug, Clone)]
pub struct Prompts {
    pub language: String,
    main: String,
    rating: String,
}

/// What fills the placeholders.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub date: NaiveDate,
    pub name: &'a str,
    pub modules: &'a [String],
    pub min_tools: u32,
    pub max_tools: u32,
    pub used_modules: &'a [String],
}

impl Prompts {
    /// Loads `dir/{language}/{main,rating}.md`, or the built-in copies when
    /// `dir` is `None`. Unknown placeholders are an error naming the file, so a
    /// typo cannot reach a persona.
    pub fn load(dir: Option<&Path>, language: &str) -> Result<Prompts, PromptError> {
        let read = |kind: &str| -> Result<String, PromptError> {
            match dir {
                Some(d) => {
                    let path = d.join(language).join(format!("{kind}.md"));
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| PromptError::Template {
                            path: path.clone(),
                            message: e.to_string(),
                        })?;
                    check(&text).map_err(|message| PromptError::Template { path, message })?;
                    Ok(text)
                }
                None => BUILTIN
                    .iter()
                    .find(|(l, k, _)| *l == language && *k == kind)
                    .map(|(_, _, t)| t.to_string())
                    .ok_or_else(|| PromptError::Template {
                        path: PathBuf::from(format!("<built-in>/{language}/{kind}.md")),
                        message: format!(
                            "no built-in templates for language {language:?} (de, en)"
                        ),
                    }),
            }
        };
        Ok(Prompts {
            language: language.to_string(),
            main: read("main")?,
            rating: read("rating")?,
        })
    }

    pub fn main(&self, v: &Vars) -> String {
        render(&self.main, v, &self.language)
    }

    pub fn rating(&self, v: &Vars) -> String {
        render(&self.rating, v, &self.language)
    }
}

fn check(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("a `{{` is never closed".into());
        };
        let name = after[..end].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{{{name}}}}} (known: {})",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

fn weekday(date: NaiveDate, language: &str) -> &'static str {
    let i = date.weekday().num_days_from_monday() as usize;
    let de = [
        "Montag",
        "Dienstag",
        "Mittwoch",
        "Donnerstag",
        "Freitag",
        "Samstag",
        "Sonntag",
    ];
    let en = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    if language == "de" { de[i] } else { en[i] }
}

fn render(t: &str, v: &Vars, language: &str) -> String {
    t.replace("{{date}}", &v.date.format("%Y-%m-%d").to_string())
        .replace("{{weekday}}", weekday(v.date, language))
        .replace("{{name}}", v.name)
        .replace("{{modules}}", &v.modules.join(", "))
        .replace("{{min_tools}}", &v.min_tools.to_string())
        .replace("{{max_tools}}", &v.max_tools.to_string())
        .replace("{{used_modules}}", &v.used_modules.join(", "))
}

/// A persona's display name from its email (`persona.anna@mana.test` → `Anna`):
/// the due list carries no name.
pub fn name_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    let local = local.strip_prefix("persona.").unwrap_or(local);
    let mut c = local.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => email.to_string(),
    }
}
