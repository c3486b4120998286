//! The state a service's handlers share.

use std::ops::Deref;
use std::sync::Arc;

/// A service's shared state behind one reference count. axum clones the
/// state for each extractor and middleware of every request; a state struct
/// cloned field by field (metrics families, the access guard, the auditor, a
/// channel sender: some thirty atomics in the command service) was 8.6% of
/// the command service's CPU under load (docs/PERFORMANCE.md, "One
/// group-commit worker"). Fields are reached through `Deref`.
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(inner: T) -> Self {
        Self(Arc::new(inner))
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
