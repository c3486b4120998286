//! The Todo aggregate.
//!
//! `handle(state, command)` decides which events happen; `apply(state, event)`
//! folds an event into state. Both are pure: no clock, no IO, no randomness
//! (the caller passes `now` and ids in a [`Context`]).
//!
//! Architecture invariant: this crate does no IO.

mod validate;

use chrono::{DateTime, Utc};
use contracts::{Empty, Priority, TodoEvent, TodoEventData, TodoUpdated};
use serde::Serialize;
use uuid::Uuid;

pub use validate::{FieldError, MAX_DESCRIPTION_CHARS, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS};

/// Current state of one todo, the result of folding its events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Todo {
    pub id: Uuid,
    pub owner: String,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub due_date: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub completed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Input of `create`. Strings are validated and normalized by `handle`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateTodo {
    pub title: String,
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub due_date: Option<DateTime<Utc>>,
    pub tags: Option<Vec<String>>,
}

/// Input of a partial `update`: `None` leaves a field unchanged;
/// `due_date: Some(None)` clears the due date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateTodo {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub due_date: Option<Option<DateTime<Utc>>>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Create(CreateTodo),
    Update(UpdateTodo),
    Complete,
    Reopen,
    Delete,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Create(_) => "create",
            Command::Update(_) => "update",
            Command::Complete => "complete",
            Command::Reopen => "reopen",
            Command::Delete => "delete",
        }
    }
}

/// Why a command was refused. Every variant is the caller's doing; there is no
/// internal failure in a pure function.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Also returned for a todo owned by someone else, so existence does not leak.
    #[error("todo not found")]
    NotFound,
    #[error("todo already exists")]
    AlreadyExists,
    #[error("{0}")]
    InvalidTransition(&'static str),
}

/// Everything `handle` needs from the outside world.
#[derive(Debug, Clone)]
pub struct Context {
    pub user_id: String,
    pub todo_id: Uuid,
    pub now: DateTime<Utc>,
}

/// Decide which events a command causes. `state` is `None` when the stream has
/// no events yet.
pub fn handle(
    state: Option<&Todo>,
    command: &Command,
    ctx: &Context,
) -> Result<Vec<TodoEventData>, DomainError> {
    let live = state.filter(|t| !t.deleted && t.owner == ctx.user_id);
    match (command, state, live) {
        (Command::Create(c), None, _) => Ok(vec![TodoEventData::Created(validate::create(c)?)]),
        (Command::Create(_), Some(_), _) => Err(DomainError::AlreadyExists),
        (_, _, None) => Err(DomainError::NotFound),
        (Command::Update(u), _, Some(todo)) => {
            let patch = validate::update(u)?;
            let changed = TodoUpdated {
                title: patch.title.filter(|t| *t != todo.title),
                description: patch.description.filter(|d| *d != todo.description),
                priority: patch.priority.filter(|p| *p != todo.priority),
                due_date: patch.due_date.filter(|d| *d != todo.due_date),
                tags: patch.tags.filter(|t| *t != todo.tags),
            };
            if changed == TodoUpdated::default() {
                Ok(vec![])
            } else {
                Ok(vec![TodoEventData::Updated(changed)])
            }
        }
        (Command::Complete, _, Some(todo)) if todo.completed => {
            Err(DomainError::InvalidTransition("todo is already completed"))
        }
        (Command::Complete, _, Some(_)) => Ok(vec![TodoEventData::Completed(Empty {})]),
        (Command::Reopen, _, Some(todo)) if !todo.completed => {
            Err(DomainError::InvalidTransition("todo is not completed"))
        }
        (Command::Reopen, _, Some(_)) => Ok(vec![TodoEventData::Reopened(Empty {})]),
        (Command::Delete, _, Some(_)) => Ok(vec![TodoEventData::Deleted(Empty {})]),
    }
}

/// Fold one event into state. Events are facts: `apply` never fails. An event
/// that does not fit (an update before a create) is ignored, which cannot
/// happen for streams written by `handle` under optimistic concurrency.
pub fn apply(state: Option<Todo>, event: &TodoEvent) -> Option<Todo> {
    let at = event.occurred_at;
    match (&event.data, state) {
        (TodoEventData::Created(c), None) => Some(Todo {
            id: event.todo_id,
            owner: event.user_id.clone(),
            title: c.title.clone(),
            description: c.description.clone(),
            priority: c.priority,
            due_date: c.due_date,
            tags: c.tags.clone(),
            completed: false,
            deleted: false,
            version: event.stream_version,
            created_at: at,
            updated_at: at,
            completed_at: None,
        }),
        (TodoEventData::Created(_), Some(s)) => Some(s),
        (_, None) => None,
        (data, Some(mut s)) => {
            match data {
                TodoEventData::Created(_) => {}
                TodoEventData::Updated(u) => {
                    if let Some(t) = &u.title {
                        s.title = t.clone();
                    }
                    if let Some(d) = &u.description {
                        s.description = d.clone();
                    }
                    if let Some(p) = u.priority {
                        s.priority = p;
                    }
                    if let Some(d) = u.due_date {
                        s.due_date = d;
                    }
                    if let Some(t) = &u.tags {
                        s.tags = t.clone();
                    }
                }
                TodoEventData::Completed(_) => {
                    s.completed = true;
                    s.completed_at = Some(at);
                }
                TodoEventData::Reopened(_) => {
                    s.completed = false;
                    s.completed_at = None;
                }
                TodoEventData::Deleted(_) => s.deleted = true,
            }
            s.version = event.stream_version;
            s.updated_at = at;
            Some(s)
        }
    }
}

/// Fold a whole stream, oldest first.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a TodoEvent>) -> Option<Todo> {
    events.into_iter().fold(None, apply)
}

/// Wrap decided event data into envelopes with consecutive stream versions.
pub fn envelope(
    data: Vec<TodoEventData>,
    ctx: &Context,
    current_version: i64,
    trace: Option<contracts::TraceContext>,
    mut next_id: impl FnMut() -> Uuid,
) -> Vec<TodoEvent> {
    data.into_iter()
        .enumerate()
        .map(|(i, data)| TodoEvent {
            event_id: next_id(),
            schema_version: contracts::TODO_EVENT_SCHEMA_VERSION,
            occurred_at: ctx.now,
            user_id: ctx.user_id.clone(),
            todo_id: ctx.todo_id,
            stream_version: current_version + 1 + i as i64,
            trace: trace.clone(),
            data,
        })
        .collect()
}

#[cfg(test)]
mod tests;
