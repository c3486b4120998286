//! Field rules. Every violation is collected, so one response lists them all.

use chrono::{DateTime, Datelike, Utc};
use contracts::{TodoCreated, TodoUpdated};
use serde::Serialize;

use crate::{CreateTodo, DomainError, UpdateTodo};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_CHARS: usize = 32;

/// One invalid field: `field` is a JSON pointer-like path (`tags/2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn title(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let t = raw.trim();
    let n = t.chars().count();
    if n == 0 {
        errors.push(FieldError::new(
            "title",
            "must not be empty or only whitespace",
        ));
    } else if n > MAX_TITLE_CHARS {
        errors.push(FieldError::new(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters after trimming, got {n}"),
        ));
    } else if t.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "title",
            "must not contain control characters",
        ));
    }
    t.to_string()
}

fn description(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let n = raw.chars().count();
    if n > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters, got {n}"),
        ));
    } else if raw
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        // NUL in particular: Postgres text and jsonb cannot hold it, so the
        // event could never be published.
        errors.push(FieldError::new(
            "description",
            "must not contain control characters other than tab, line feed and carriage return",
        ));
    }
    raw.to_string()
}

fn tags(raw: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if raw.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            format!("at most {MAX_TAGS} tags, got {}", raw.len()),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, tag) in raw.iter().enumerate() {
        let n = tag.chars().count();
        if n == 0 || n > MAX_TAG_CHARS {
            errors.push(FieldError::new(
                format!("tags/{i}"),
                format!("must be 1 to {MAX_TAG_CHARS} characters, got {n}"),
            ));
        } else if !tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            errors.push(FieldError::new(
                format!("tags/{i}"),
                "may contain only a-z, 0-9 and '-'",
            ));
        } else if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    out
}

/// A due date must be writable as RFC 3339 in UTC (a four-digit year), as
/// the event schema requires: `0000-01-01T00:00:00+01:00` parses but is in
/// year -1 in UTC.
fn due_date(d: Option<DateTime<Utc>>, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    if let Some(d) = d
        && !(0..=9999).contains(&d.year())
    {
        errors.push(FieldError::new(
            "due_date",
            format!(
                "must be between 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, got year {} in UTC",
                d.year()
            ),
        ));
    }
    d
}

pub(crate) fn create(c: &CreateTodo) -> Result<TodoCreated, DomainError> {
    let mut errors = Vec::new();
    let created = TodoCreated {
        title: title(&c.title, &mut errors),
        description: description(c.description.as_deref().unwrap_or(""), &mut errors),
        priority: c.priority.unwrap_or_default(),
        due_date: due_date(c.due_date, &mut errors),
        tags: tags(c.tags.as_deref().unwrap_or(&[]), &mut errors),
    };
    if errors.is_empty() {
        Ok(created)
    } else {
        Err(DomainError::Invalid(errors))
    }
}

pub(crate) fn update(u: &UpdateTodo) -> Result<TodoUpdated, DomainError> {
    let mut errors = Vec::new();
    if *u == UpdateTodo::default() {
        errors.push(FieldError::new(
            "",
            "a patch must set at least one of title, description, priority, due_date, tags",
        ));
    }
    let patch = TodoUpdated {
        title: u.title.as_deref().map(|t| title(t, &mut errors)),
        description: u
            .description
            .as_deref()
            .map(|d| description(d, &mut errors)),
        priority: u.priority,
        due_date: u.due_date.map(|d| due_date(d, &mut errors)),
        tags: u.tags.as_deref().map(|t| tags(t, &mut errors)),
    };
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(DomainError::Invalid(errors))
    }
}
