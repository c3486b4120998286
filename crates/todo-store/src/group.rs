//! Group commit: concurrent requests' writes are appended together, one
//! statement (one transaction, one WAL flush) for a batch, instead of one
//! per request.
//!
//! `workers` tasks share a queue. A free worker takes the first waiting
//! write and whatever else is already queued (up to `max_batch`), so batches
//! form only under load and a lone request is never delayed. A batch commits
//! or fails as a whole; when it fails, each write in it is retried on its
//! own, so every request gets exactly its own outcome (a version conflict in
//! one does not fail its neighbours) and nothing is committed twice (the
//! failed batch committed nothing).

use std::sync::Arc;

use contracts::TodoEvent;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::StoreError;
use crate::command::{IdempotencyRecord, NewEvent, Write, append, append_batch};

/// A write that owns its data (it crosses to a worker task).
pub struct OwnedWrite {
    /// (event, topic, the exact record bytes)
    pub events: Vec<(TodoEvent, &'static str, Vec<u8>)>,
    /// (user, key, record)
    pub idempotency: Option<(String, String, IdempotencyRecord)>,
}

struct Job {
    write: OwnedWrite,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

#[derive(Clone)]
pub struct GroupCommitter {
    tx: mpsc::Sender<Job>,
}

impl GroupCommitter {
    pub fn spawn(pool: PgPool, workers: usize, max_batch: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4 * max_batch.max(1) * workers.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            tokio::spawn(worker(pool.clone(), rx.clone(), max_batch.max(1)));
        }
        Self { tx }
    }

    /// Append `write`, batched with whatever else is waiting.
    pub async fn append(&self, write: OwnedWrite) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { write, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the group committer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the group committer dropped a write".into()))?
    }
}

fn new_events(w: &OwnedWrite) -> Vec<NewEvent<'_>> {
    w.events
        .iter()
        .map(|(event, topic, record)| NewEvent {
            event,
            topic,
            record: record.clone(),
        })
        .collect()
}

async fn worker(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            batch.push(first);
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
        }
        if batch.len() == 1 {
            let job = batch.pop().expect("one job");
            let res = commit_one(&pool, &job.write).await;
            let _ = job.reply.send(res);
            continue;
        }
        let all: Vec<Vec<NewEvent<'_>>> = batch.iter().map(|j| new_events(&j.write)).collect();
        let writes: Vec<Write<'_>> = batch
            .iter()
            .zip(&all)
            .map(|(j, events)| Write {
                events,
                idempotency: j
                    .write
                    .idempotency
                    .as_ref()
                    .map(|(u, k, r)| (u.as_str(), k.as_str(), r)),
            })
            .collect();
        let res = append_batch(&pool, &writes).await;
        drop(writes);
        drop(all);
        match res {
            Ok(()) => {
                for j in batch {
                    let _ = j.reply.send(Ok(()));
                }
            }
            Err(_) => {
                // Nothing of the batch committed: each write on its own.
                for j in batch {
                    let res = commit_one(&pool, &j.write).await;
                    let _ = j.reply.send(res);
                }
            }
        }
    }
}

async fn commit_one(pool: &PgPool, w: &OwnedWrite) -> Result<(), StoreError> {
    let events = new_events(w);
    append(
        pool,
        &events,
        w.idempotency
            .as_ref()
            .map(|(u, k, r)| (u.as_str(), k.as_str(), r)),
    )
    .await
}
