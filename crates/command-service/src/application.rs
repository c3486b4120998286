//! The command application layer: [`Commands::execute`] runs one command
//! against one todo's stream, modelled on cqrs-es's `CqrsFramework::execute`.
//!
//! Load the events, fold them, let `todo-domain` decide, wrap the new events
//! in their `contracts` envelope and append them (outbox rows and idempotency
//! record in the same statement), retrying when another writer took the
//! version first. Nothing here knows about HTTP: the handlers in `api.rs`
//! turn a request into a command and [`Metadata`], and an [`Outcome`] or a
//! [`CommandError`] into a response.

use crate::metrics::Metrics;
use chrono::{SubsecRound, Utc};
use contracts::{TraceContext, topics};
use sqlx::PgPool;
use todo_domain::{Command, Context, DomainError, Todo};
use todo_store::StoreError;
use todo_store::command::{self as store, IdempotencyRecord, NewEvent, Write};
use todo_store::group::GroupCommitter;
use uuid::Uuid;

use crate::Resources;
use crate::relay::OutboxSignal;

/// Attempts of one command when another writer appends to the same stream
/// first and the caller did not pin a version.
pub const MAX_ATTEMPTS: usize = 3;

/// What travels with a command besides its payload.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Who sends the command: the owner of a new todo, the only one who may
    /// change it, and the `user_id` of its events.
    pub user_id: String,
    /// The version the caller last saw (`If-Match`). A todo at another
    /// version is a conflict, and a lost race is not retried.
    pub expected_version: Option<i64>,
    /// Set when the caller wants retries of this request answered once.
    pub idempotency: Option<Idempotency>,
    /// Stored in the event envelope, so that relay and consumers continue
    /// the caller's trace.
    pub trace: Option<TraceContext>,
}

/// An idempotency key and the fingerprint of the request it was sent with:
/// the same key with another fingerprint is refused, never replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// The answer to a command as the idempotency record keeps it, so that a
/// replay says byte for byte what the first answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// An HTTP status code: 201 for a create, 204 for a delete, else 200.
    pub status: u16,
    /// The todo after the command, as JSON (empty for a delete).
    pub body: Vec<u8>,
    /// The todo's version as an entity tag (`"3"`).
    pub etag: Option<String>,
    /// Where a created todo lives (`/v1/todos/{id}`).
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The command was accepted and its events committed (none when it
    /// changed nothing); `todo` is the state after them.
    Committed { todo: Todo, reply: Reply },
    /// The idempotency key was seen before with the same request: the stored
    /// reply, nothing written.
    Replayed(Reply),
}

/// Why a command was not executed: the first five are the caller's doing,
/// the last two went wrong inside.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused: invalid input, no such todo, a transition that
    /// does not apply.
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// `expected_version` is not the todo's version.
    #[error(
        "version conflict: If-Match expects version {expected}, the todo is at version {actual}"
    )]
    VersionMismatch { expected: i64, actual: i64 },
    /// Another writer appended to the stream first, and the command pinned a
    /// version or ran out of attempts.
    #[error("version conflict: another change to this todo committed first; reload and retry")]
    ConcurrentChange,
    /// The idempotency key was first used with another request.
    #[error("this Idempotency-Key was already used with a different request; use a new key")]
    KeyReused,
    /// A concurrent request with the same key was recording its answer and
    /// then failed.
    #[error("a concurrent request with this Idempotency-Key failed; retry")]
    KeyRaceLost,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What [`Commands::execute`] works with: the pool, the group committer when
/// one runs, the relay's wake-up and the metrics.
#[derive(Clone, Copy)]
pub struct Commands<'a> {
    pub pool: &'a PgPool,
    /// Batches concurrent writes into one statement (None: one per command).
    pub committer: Option<&'a GroupCommitter>,
    pub outbox_wake: &'a OutboxSignal,
    pub metrics: &'a Metrics,
}

impl Resources {
    pub fn commands(&self) -> Commands<'_> {
        Commands {
            pool: &self.pool,
            committer: self.committer.as_ref(),
            outbox_wake: &self.outbox_wake,
            metrics: &self.metrics,
        }
    }
}

impl Commands<'_> {
    /// Execute `command` on the todo `todo_id` (`None`: a new todo, whose id
    /// is drawn here). A stored answer for the idempotency key is replayed
    /// instead; a lost race for the stream's next version is retried from
    /// the load unless `metadata` pins the version.
    pub async fn execute(
        &self,
        todo_id: Option<Uuid>,
        command: Command,
        metadata: Metadata,
    ) -> Result<Outcome, CommandError> {
        if let Some(idem) = &metadata.idempotency
            && let Some(rec) =
                store::find_idempotency(self.pool, &metadata.user_id, &idem.key).await?
        {
            return replay(rec, idem);
        }
        let id = todo_id.unwrap_or_else(Uuid::now_v7);
        let mut attempt = 1;
        loop {
            match self
                .attempt(todo_id.is_some(), id, &command, &metadata)
                .await
            {
                Err(CommandError::Store(StoreError::Conflict))
                    if metadata.expected_version.is_none() && attempt < MAX_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(CommandError::Store(StoreError::Conflict)) => {
                    return Err(CommandError::ConcurrentChange);
                }
                Err(CommandError::Store(StoreError::IdempotencyRace)) => {
                    // The record of whoever won the race answers this request.
                    let idem = metadata.idempotency.as_ref().ok_or_else(|| {
                        anyhow::anyhow!("idempotency race without an idempotency key")
                    })?;
                    return match store::find_idempotency(self.pool, &metadata.user_id, &idem.key)
                        .await?
                    {
                        Some(rec) => replay(rec, idem),
                        None => Err(CommandError::KeyRaceLost),
                    };
                }
                other => return other,
            }
        }
    }

    /// One load, fold, decide and append.
    async fn attempt(
        &self,
        exists: bool,
        todo_id: Uuid,
        command: &Command,
        metadata: &Metadata,
    ) -> Result<Outcome, CommandError> {
        let history = if exists {
            store::load_stream(self.pool, todo_id).await?
        } else {
            vec![]
        };
        let state = todo_domain::fold(&history);
        let current_version = state.as_ref().map_or(0, |t| t.version);
        // A todo the caller may not see reports no version: the domain
        // answers "not found" for it below.
        if let (Some(expected), Some(t)) = (metadata.expected_version, &state)
            && expected != t.version
            && !t.deleted
            && t.owner == metadata.user_id
        {
            return Err(CommandError::VersionMismatch {
                expected,
                actual: t.version,
            });
        }
        // Postgres keeps microseconds: truncate so that every copy of the event agrees.
        let ctx = Context {
            user_id: metadata.user_id.clone(),
            todo_id,
            now: Utc::now().trunc_subsecs(6),
        };
        let decided = todo_domain::handle(state.as_ref(), command, &ctx)?;
        let events = todo_domain::envelope(
            decided,
            &ctx,
            current_version,
            metadata.trace.clone(),
            Uuid::new_v4,
        );
        let todo = events
            .iter()
            .fold(state, todo_domain::apply)
            .ok_or_else(|| anyhow::anyhow!("command produced no state"))?;
        let wrote_events = !events.is_empty();
        let mut new_events = Vec::with_capacity(events.len());
        for event in events {
            let record = contracts::schema::encode_todo_event(&event)
                .map_err(|err| anyhow::anyhow!("event failed its own schema: {err}"))?;
            new_events.push(NewEvent {
                event,
                topic: topics::TODO_EVENTS,
                record,
            });
        }
        let reply = Reply::for_command(command, &todo)?;
        let write = Write {
            events: new_events,
            idempotency: metadata.idempotency.as_ref().map(|idem| {
                (
                    metadata.user_id.clone(),
                    idem.key.clone(),
                    reply.record(idem.request_hash.clone()),
                )
            }),
        };
        match self.committer {
            Some(c) => c.append(write).await?,
            None => store::append(self.pool, &write).await?,
        }
        if wrote_events {
            self.outbox_wake.committed();
        }
        match command {
            Command::Create(_) => self.metrics.todos_created.inc(),
            Command::Complete => self.metrics.todos_completed.inc(),
            _ => 0,
        };
        Ok(Outcome::Committed { todo, reply })
    }
}

/// The stored answer when `rec` was recorded for the same request.
fn replay(rec: IdempotencyRecord, idem: &Idempotency) -> Result<Outcome, CommandError> {
    if rec.request_hash != idem.request_hash {
        return Err(CommandError::KeyReused);
    }
    Ok(Outcome::Replayed(Reply {
        status: rec.status,
        body: rec.body,
        etag: rec.etag,
        location: rec.location,
    }))
}

impl Reply {
    /// The answer to `command`, which left the todo as `todo`.
    fn for_command(command: &Command, todo: &Todo) -> Result<Self, CommandError> {
        if matches!(command, Command::Delete) {
            return Ok(Reply {
                status: 204,
                body: vec![],
                etag: None,
                location: None,
            });
        }
        let created = matches!(command, Command::Create(_));
        Ok(Reply {
            status: if created { 201 } else { 200 },
            body: serde_json::to_vec(todo).map_err(anyhow::Error::from)?,
            etag: Some(format!("\"{}\"", todo.version)),
            location: created.then(|| format!("/v1/todos/{}", todo.id)),
        })
    }

    fn record(&self, request_hash: Vec<u8>) -> IdempotencyRecord {
        IdempotencyRecord {
            request_hash,
            status: self.status,
            body: self.body.clone(),
            etag: self.etag.clone(),
            location: self.location.clone(),
        }
    }
}
