//! [`SharedBackend`]: one backend behind an `Arc`, usable wherever a `Box<dyn Backend>` is
//! wanted (a [`persist_core::Store`], a [`crate::Replicator`]) while the caller keeps a handle.

use std::sync::Arc;

use persist_core::{Backend, BackendError, NewObject, ObjectBytes, ObjectHead, ObjectMeta};

/// A cloneable handle on a backend; every method delegates.
#[derive(Clone, Debug)]
pub struct SharedBackend(pub Arc<dyn Backend>);

impl SharedBackend {
    /// Wraps a backend.
    pub fn new(backend: impl Backend + 'static) -> Self {
        SharedBackend(Arc::new(backend))
    }
}

impl Backend for SharedBackend {
    fn location(&self) -> String {
        self.0.location()
    }
    fn begin_put(&self, key: &str) -> Result<Box<dyn NewObject + '_>, BackendError> {
        self.0.begin_put(key)
    }
    fn get(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        self.0.get(key)
    }
    fn get_mapped(&self, key: &str) -> Result<ObjectBytes, BackendError> {
        self.0.get_mapped(key)
    }
    fn get_head(&self, key: &str, len: usize) -> Result<ObjectHead, BackendError> {
        self.0.get_head(key, len)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        self.0.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.0.delete(key)
    }
    fn free_space(&self) -> Result<Option<u64>, BackendError> {
        self.0.free_space()
    }
    fn put_new(&self, key: &str, parts: &[&[u8]]) -> Result<(), BackendError> {
        self.0.put_new(key, parts)
    }
}
