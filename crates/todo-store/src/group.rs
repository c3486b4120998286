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

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::StoreError;
use crate::command::{Write, append, append_batch};

struct Job {
    write: Write,
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
    pub async fn append(&self, write: Write) -> Result<(), StoreError> {
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
        let writes: Vec<&Write> = batch.iter().map(|j| &j.write).collect();
        let res = append_batch(&pool, &writes).await;
        drop(writes);
        match res {
            Ok(()) => {
                for j in batch {
                    let _ = j.reply.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(j) = batch.pop() {
                    let _ = j.reply.send(Err(e));
                }
            }
            Err(_) => {
                // Nothing of the batch committed: each write on its own.
                for j in batch {
                    let res = append(&pool, &j.write).await;
                    let _ = j.reply.send(res);
                }
            }
        }
    }
}
