//! The command application layer without HTTP: `Commands::execute` against a
//! real PostgreSQL (one per test, each with a fresh database).

use command_service::application::{CommandError, Commands, Idempotency, Metadata, Outcome, Reply};
use command_service::metrics::Metrics;
use command_service::relay::OutboxSignal;
use devstack::Postgres;
use sqlx::PgPool;
use telemetry::metrics::MetricsRegistry;
use todo_domain::{Command, CreateTodo, DomainError, Todo, UpdateTodo};
use todo_store::command as store;
use uuid::Uuid;

struct Fixture {
    _postgres: Postgres,
    pool: PgPool,
    outbox_wake: OutboxSignal,
    metrics: Metrics,
}

impl Fixture {
    async fn start() -> anyhow::Result<Self> {
        let postgres = Postgres::start(devstack::postgres::Options::for_tests()).await?;
        let url = postgres.create_database("execute").await?;
        let pool = todo_store::connect(&url, 8).await?;
        todo_store::migrate::run(&pool, todo_store::migrate::Component::Command).await?;
        Ok(Self {
            _postgres: postgres,
            pool,
            outbox_wake: OutboxSignal::default(),
            metrics: Metrics::register(&mut MetricsRegistry::new(command_service::SERVICE, "test")),
        })
    }

    fn commands(&self) -> Commands<'_> {
        Commands {
            pool: &self.pool,
            committer: None,
            outbox_wake: &self.outbox_wake,
            metrics: &self.metrics,
        }
    }

    async fn execute(
        &self,
        id: Option<Uuid>,
        command: Command,
        metadata: Metadata,
    ) -> Result<Outcome, CommandError> {
        self.commands().execute(id, command, metadata).await
    }

    /// A todo of `user`, created without an idempotency key.
    async fn create(&self, user: &str, title: &str) -> anyhow::Result<Todo> {
        match self.execute(None, create(title), by(user)).await? {
            Outcome::Committed { todo, .. } => Ok(todo),
            other => anyhow::bail!("expected a commit, got {other:?}"),
        }
    }

    async fn stream(&self, id: Uuid) -> anyhow::Result<Vec<contracts::TodoEvent>> {
        Ok(store::load_stream(&self.pool, id).await?)
    }

    async fn outbox_rows(&self) -> anyhow::Result<usize> {
        Ok(store::outbox_batch(&self.pool, 100).await?.len())
    }
}

fn create(title: &str) -> Command {
    Command::Create(CreateTodo {
        title: title.into(),
        ..CreateTodo::default()
    })
}

fn by(user: &str) -> Metadata {
    Metadata {
        user_id: user.into(),
        ..Metadata::default()
    }
}

fn committed(outcome: Outcome) -> anyhow::Result<(Todo, Reply)> {
    match outcome {
        Outcome::Committed { todo, reply } => Ok((todo, reply)),
        other => anyhow::bail!("expected a commit, got {other:?}"),
    }
}

#[tokio::test]
async fn create_appends_the_event_its_outbox_row_and_answers_201() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let (todo, reply) = committed(f.execute(None, create("buy milk"), by("ann")).await?)?;

    assert_eq!(todo.title, "buy milk");
    assert_eq!(todo.owner, "ann");
    assert_eq!(todo.version, 1);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.etag.as_deref(), Some("\"1\""));
    assert_eq!(reply.location, Some(format!("/v1/todos/{}", todo.id)));
    let body: serde_json::Value = serde_json::from_slice(&reply.body)?;
    assert_eq!(body["id"], todo.id.to_string());
    assert_eq!(body["title"], "buy milk");

    let events = f.stream(todo.id).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id, "ann");
    assert_eq!(events[0].stream_version, 1);
    assert_eq!(f.outbox_rows().await?, 1);
    assert_eq!(f.metrics.todos_created.get(), 1);
    Ok(())
}

#[tokio::test]
async fn transitions_fold_the_stream_and_append_the_next_version() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let todo = f.create("ann", "write report").await?;

    let pinned = Metadata {
        expected_version: Some(1),
        ..by("ann")
    };
    let (done, reply) = committed(f.execute(Some(todo.id), Command::Complete, pinned).await?)?;
    assert!(done.completed);
    assert_eq!(done.version, 2);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.etag.as_deref(), Some("\"2\""));
    assert_eq!(reply.location, None);
    assert_eq!(f.metrics.todos_completed.get(), 1);

    let (reopened, _) = committed(f.execute(Some(todo.id), Command::Reopen, by("ann")).await?)?;
    assert!(!reopened.completed);
    assert_eq!(reopened.version, 3);

    let (deleted, reply) = committed(f.execute(Some(todo.id), Command::Delete, by("ann")).await?)?;
    assert!(deleted.deleted);
    assert_eq!(
        reply,
        Reply {
            status: 204,
            body: vec![],
            etag: None,
            location: None
        }
    );
    let versions: Vec<i64> = f
        .stream(todo.id)
        .await?
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(f.outbox_rows().await?, 4);
    Ok(())
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_writes_nothing() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let todo = f.create("ann", "stale").await?;
    f.execute(Some(todo.id), Command::Complete, by("ann"))
        .await?;

    let stale = Metadata {
        expected_version: Some(1),
        ..by("ann")
    };
    let err = f
        .execute(Some(todo.id), Command::Reopen, stale)
        .await
        .expect_err("version 1 is stale");
    assert!(
        matches!(
            err,
            CommandError::VersionMismatch {
                expected: 1,
                actual: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(f.stream(todo.id).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn concurrent_writers_without_a_pinned_version_both_commit() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let todo = f.create("ann", "contended").await?;
    let update = |title: &str| {
        Command::Update(UpdateTodo {
            title: Some(title.into()),
            ..UpdateTodo::default()
        })
    };
    let (a, b) = tokio::join!(
        f.execute(Some(todo.id), update("first"), by("ann")),
        f.execute(Some(todo.id), update("second"), by("ann")),
    );
    let mut versions = [committed(a?)?.0.version, committed(b?)?.0.version];
    versions.sort();
    assert_eq!(versions, [2, 3]);
    assert_eq!(f.stream(todo.id).await?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn an_idempotency_key_replays_its_answer_and_refuses_another_request() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let keyed = |hash: &[u8]| Metadata {
        idempotency: Some(Idempotency {
            key: "key-1".into(),
            request_hash: hash.to_vec(),
        }),
        ..by("ann")
    };

    let (todo, first) = committed(f.execute(None, create("once"), keyed(b"A")).await?)?;
    let again = f.execute(None, create("once"), keyed(b"A")).await?;
    assert_eq!(again, Outcome::Replayed(first));
    assert_eq!(
        store::all_events(&f.pool).await?.len(),
        1,
        "one create only"
    );

    let err = f
        .execute(None, create("other"), keyed(b"B"))
        .await
        .expect_err("the key belongs to another request");
    assert!(matches!(err, CommandError::KeyReused), "{err:?}");
    assert_eq!(store::all_events(&f.pool).await?.len(), 1);

    // Keys are per user: another user's same key is a new request.
    let other_user = Metadata {
        user_id: "bob".into(),
        ..keyed(b"B")
    };
    let (bobs, _) = committed(f.execute(None, create("bob's"), other_user).await?)?;
    assert_ne!(bobs.id, todo.id);
    Ok(())
}

#[tokio::test]
async fn domain_refusals_write_nothing() -> anyhow::Result<()> {
    let f = Fixture::start().await?;
    let todo = f.create("ann", "refused").await?;

    let err = f
        .execute(Some(todo.id), Command::Reopen, by("ann"))
        .await
        .expect_err("an open todo cannot be reopened");
    assert!(
        matches!(
            err,
            CommandError::Refused(DomainError::InvalidTransition(_))
        ),
        "{err:?}"
    );

    let err = f
        .execute(Some(todo.id), Command::Complete, by("mallory"))
        .await
        .expect_err("someone else's todo");
    assert!(
        matches!(err, CommandError::Refused(DomainError::NotFound)),
        "{err:?}"
    );

    let err = f
        .execute(None, create("   "), by("ann"))
        .await
        .expect_err("a blank title");
    assert!(
        matches!(err, CommandError::Refused(DomainError::Invalid(_))),
        "{err:?}"
    );

    assert_eq!(store::all_events(&f.pool).await?.len(), 1);
    assert_eq!(f.outbox_rows().await?, 1);
    Ok(())
}
