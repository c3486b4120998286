//! Given/when/then over events: given past events, when a command is handled,
//! then these events (or this error) follow.

use super::*;
use chrono::TimeZone;
use contracts::TodoCreated;

fn ctx(user: &str) -> Context {
    Context {
        user_id: user.into(),
        todo_id: Uuid::from_u128(7),
        now: Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .unwrap_or_default(),
    }
}

struct Scenario {
    given: Vec<TodoEvent>,
}

fn given(data: Vec<TodoEventData>) -> Scenario {
    let c = ctx("alice");
    let mut n = 0u128;
    Scenario {
        given: envelope(data, &c, 0, None, || {
            n += 1;
            Uuid::from_u128(n)
        }),
    }
}

impl Scenario {
    fn when(&self, user: &str, cmd: Command) -> Result<Vec<TodoEventData>, DomainError> {
        let state = fold(&self.given);
        handle(state.as_ref(), &cmd, &ctx(user))
    }
}

fn created(title: &str) -> TodoEventData {
    TodoEventData::Created(TodoCreated {
        title: title.into(),
        description: String::new(),
        priority: Priority::Medium,
        due_date: None,
        tags: vec![],
    })
}

fn create(title: &str) -> Command {
    Command::Create(CreateTodo {
        title: title.into(),
        ..Default::default()
    })
}

#[test]
fn create_trims_title_and_defaults_priority() {
    let then = given(vec![]).when("alice", create("  Buy milk  "));
    assert_eq!(then, Ok(vec![created("Buy milk")]));
}

#[test]
fn create_collects_every_field_error() {
    let cmd = Command::Create(CreateTodo {
        title: "   ".into(),
        description: Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
        tags: Some(vec!["ok".into(), "Bad Tag".into(), "x".repeat(33)]),
        ..Default::default()
    });
    let Err(DomainError::Invalid(errors)) = given(vec![]).when("alice", cmd) else {
        panic!("expected validation errors");
    };
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["title", "description", "tags/1", "tags/2"]);
}

#[test]
fn title_length_counts_characters_not_bytes() {
    let ok = "é".repeat(MAX_TITLE_CHARS);
    assert!(given(vec![]).when("alice", create(&ok)).is_ok());
    let too_long = "é".repeat(MAX_TITLE_CHARS + 1);
    assert!(matches!(
        given(vec![]).when("alice", create(&too_long)),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn too_many_tags_and_duplicates_are_handled() {
    let tags: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let cmd = Command::Create(CreateTodo {
        title: "t".into(),
        tags: Some(tags),
        ..Default::default()
    });
    assert!(matches!(
        given(vec![]).when("alice", cmd),
        Err(DomainError::Invalid(_))
    ));
    let cmd = Command::Create(CreateTodo {
        title: "t".into(),
        tags: Some(vec!["a".into(), "a".into()]),
        ..Default::default()
    });
    let Ok(events) = given(vec![]).when("alice", cmd) else {
        panic!("valid")
    };
    assert!(matches!(&events[0], TodoEventData::Created(c) if c.tags == ["a"]));
}

#[test]
fn create_twice_is_refused() {
    assert_eq!(
        given(vec![created("a")]).when("alice", create("b")),
        Err(DomainError::AlreadyExists)
    );
}

#[test]
fn update_emits_only_changed_fields() {
    let cmd = Command::Update(UpdateTodo {
        title: Some("a".into()),
        priority: Some(Priority::Urgent),
        due_date: Some(None),
        ..Default::default()
    });
    let then = given(vec![created("a")]).when("alice", cmd);
    assert_eq!(
        then,
        Ok(vec![TodoEventData::Updated(TodoUpdated {
            priority: Some(Priority::Urgent),
            ..Default::default()
        })])
    );
}

#[test]
fn update_without_changes_emits_nothing_and_empty_patch_is_invalid() {
    let same = Command::Update(UpdateTodo {
        title: Some("a".into()),
        ..Default::default()
    });
    assert_eq!(given(vec![created("a")]).when("alice", same), Ok(vec![]));
    let empty = Command::Update(UpdateTodo::default());
    assert!(matches!(
        given(vec![created("a")]).when("alice", empty),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn complete_reopen_transitions() {
    let s = given(vec![created("a")]);
    assert_eq!(
        s.when("alice", Command::Complete),
        Ok(vec![TodoEventData::Completed(Empty {})])
    );
    assert!(matches!(
        s.when("alice", Command::Reopen),
        Err(DomainError::InvalidTransition(_))
    ));
    let done = given(vec![created("a"), TodoEventData::Completed(Empty {})]);
    assert!(matches!(
        done.when("alice", Command::Complete),
        Err(DomainError::InvalidTransition(_))
    ));
    assert_eq!(
        done.when("alice", Command::Reopen),
        Ok(vec![TodoEventData::Reopened(Empty {})])
    );
}

#[test]
fn other_users_and_deleted_todos_are_not_found() {
    let s = given(vec![created("a")]);
    assert_eq!(
        s.when("mallory", Command::Complete),
        Err(DomainError::NotFound)
    );
    assert_eq!(
        s.when("mallory", Command::Delete),
        Err(DomainError::NotFound)
    );
    let deleted = given(vec![created("a"), TodoEventData::Deleted(Empty {})]);
    assert_eq!(
        deleted.when("alice", Command::Complete),
        Err(DomainError::NotFound)
    );
    assert_eq!(
        given(vec![]).when("alice", Command::Delete),
        Err(DomainError::NotFound)
    );
}

#[test]
fn fold_tracks_version_and_state() {
    let s = given(vec![
        created("a"),
        TodoEventData::Updated(TodoUpdated {
            tags: Some(vec!["x".into()]),
            ..Default::default()
        }),
        TodoEventData::Completed(Empty {}),
    ]);
    let todo = fold(&s.given).expect("exists");
    assert_eq!(todo.version, 3);
    assert!(todo.completed);
    assert_eq!(todo.tags, ["x"]);
    assert_eq!(todo.owner, "alice");
    assert!(todo.completed_at.is_some());
}

#[test]
fn control_characters_and_unwritable_due_dates_are_invalid() {
    // Found by schemathesis: a NUL was accepted, and Postgres cannot store
    // it, so the outbox relay retried the event forever; a due date in year
    // -1 or 10000 (UTC) failed the event's own schema with a 500.
    let far = |y: i32| Utc.with_ymd_and_hms(y, 6, 1, 0, 0, 0).single();
    let cmd = Command::Create(CreateTodo {
        title: "a\u{0}b".into(),
        description: Some("line\u{7}".into()),
        due_date: far(10_000),
        ..Default::default()
    });
    let Err(DomainError::Invalid(errors)) = given(vec![]).when("alice", cmd) else {
        panic!("expected validation errors");
    };
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["title", "description", "due_date"]);
    let patch = Command::Update(UpdateTodo {
        due_date: Some(far(-1)),
        ..Default::default()
    });
    assert!(matches!(
        given(vec![created("a")]).when("alice", patch),
        Err(DomainError::Invalid(_))
    ));
    let fine = Command::Create(CreateTodo {
        title: "ok".into(),
        description: Some("tab\tand\r\nnew lines".into()),
        due_date: far(9999),
        ..Default::default()
    });
    assert!(given(vec![]).when("alice", fine).is_ok());
}
