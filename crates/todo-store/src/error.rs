use sqlx::error::DatabaseError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended the same stream version first.
    #[error("version conflict on stream")]
    Conflict,
    /// The idempotency key was recorded by a concurrent request.
    #[error("idempotency key already recorded")]
    IdempotencyRace,
    /// Postgres cannot be reached or refuses connections right now.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("bad database configuration: {0}")]
    Config(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Other(sqlx::Error),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// The driver's detail when Postgres is away for now, so that a caller
    /// should retry later; `None` when something is broken instead. HTTP
    /// services answer with `service_kit::ApiError::database`.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            StoreError::Unavailable(detail) => Some(detail),
            _ => None,
        }
    }
}

fn unavailable_code(code: &str) -> bool {
    // 08: connection exception; 57P0x: shutdown/cannot connect now; 53300: too many connections
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                if unavailable_code(&code) {
                    StoreError::Unavailable(e.to_string())
                } else if db.is_unique_violation() {
                    match db.constraint() {
                        Some("events_stream_version") => StoreError::Conflict,
                        Some("idempotency_keys_pkey") => StoreError::IdempotencyRace,
                        _ => StoreError::Other(e),
                    }
                } else {
                    StoreError::Other(e)
                }
            }
            _ => StoreError::Other(e),
        }
    }
}

/// Keep `DatabaseError` in scope for the trait methods used above.
#[allow(dead_code)]
fn _uses(_: &dyn DatabaseError) {}
