//! The file backend under redb: redb's own `FileBackend`, plus zero-filling whenever the file
//! grows.
//!
//! redb grows its file with `set_len`, which leaves a sparse hole. Every later commit that
//! writes into the hole makes the filesystem allocate blocks, and the commit's `fdatasync` must
//! then journal that metadata too — on ext4 that doubles the cost of the one fsync each commit
//! pays. Writing zeros over the new range once, when the file grows, means commits overwrite
//! blocks that already exist, and `fdatasync` flushes data only. The zeros are made durable by
//! the next commit's sync, as redb expects of `set_len`.

use std::fs::File;
use std::io;
use std::ops::Bound;

use redb::{BackendError, StorageBackend, backends::FileBackend};

/// Zero-fill chunk size.
const CHUNK: usize = 1024 * 1024;

/// redb's file backend with allocated (not sparse) growth.
#[derive(Debug)]
pub struct PreallocBackend {
    inner: FileBackend,
    zeros: Vec<u8>,
}

impl PreallocBackend {
    /// Wraps an open file.
    pub fn new(file: File) -> Result<Self, redb::DatabaseError> {
        Ok(Self {
            inner: FileBackend::new(file)?,
            zeros: vec![0; CHUNK],
        })
    }
}

impl StorageBackend for PreallocBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let old = self.inner.len()?;
        self.inner.set_len(len)?;
        let mut at = old;
        while at < len {
            let n = usize::try_from(len - at).map_or(CHUNK, |r| r.min(CHUNK));
            self.inner.write(at, &self.zeros[..n])?;
            at += n as u64;
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
