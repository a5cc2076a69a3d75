//! The durable store: one redb file, its tables, the versioned encoding of every stored value,
//! and the single writer task that commits many requests per transaction.
//!
//! Everything above this module talks in domain terms; only this module knows table layouts.
//! Reads open their own read transaction ([`Store::read`]); every write goes through
//! [`writer::Writer`], which owns the only write transaction.

pub mod backend;
pub mod codec;
pub mod event_row;
pub mod logged;
#[cfg(test)]
mod power_cut;
pub mod tables;
pub mod wal;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

pub use codec::Stored;

/// A failure of the store itself (disk, file, encoding) — never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// A stored value could not be decoded or encoded.
    #[error("stored {what} is unreadable: {detail}; restore from backup or report a bug")]
    Codec {
        /// What kind of value.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// A stored value carries a version this build does not know.
    #[error(
        "stored {what} has format version {version}, newer than this build knows; upgrade orderd"
    )]
    UnknownVersion {
        /// What kind of value.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// Another process (probably a running daemon) holds the database.
    #[error(
        "the store {0} is open in another process: the daemon is running. Stop it first (`systemctl stop orderd` on an installed box), or use the admin page or the HTTP API"
    )]
    Locked(PathBuf),
    /// A batch was abandoned because another request in it failed in the store.
    #[error("the write batch was rolled back: {0}")]
    RolledBack(String),
    /// The writer thread has stopped (shutdown); nothing was written.
    #[error("the writer has stopped")]
    WriterStopped,
    /// The emit hook (staff alerts) refused an event; the batch is rolled back.
    #[error("the emit hook failed: {0}")]
    Hook(String),
}

impl StoreError {
    /// Whether the disk is full (reported as 507 rather than 503).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Redb(redb::Error::Io(e)) => backend::is_disk_full(e),
            _ => false,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError,
    redb::DatabaseError
);

/// The schema version of the file layout (tables and keys). Values carry their own versions.
pub const SCHEMA_VERSION: u64 = 1;

/// The opened redb file and its write-ahead log.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    wal: Arc<std::sync::Mutex<Option<wal::Wal>>>,
    reserve: Option<Arc<backend::Reserve>>,
}

impl Store {
    /// File name of the database inside the data directory.
    pub const FILE: &'static str = "orderd.redb";
    /// File name of the write-ahead log inside the data directory.
    pub const WAL_FILE: &'static str = "orderd.wal";

    /// Opens (or creates) `<data_dir>/orderd.redb` with an explicit page cache, creates every
    /// table, and checks the schema version.
    pub fn open(data_dir: &Path, cache_size_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with_reserve(data_dir, cache_size_bytes, 0)
    }

    /// [`Store::open`] for the daemon: with `reserve_bytes` set aside in `orderd.reserve`
    /// (created now if there is room) for the store to grow into on a full disk.
    pub fn open_with_reserve(
        data_dir: &Path,
        cache_size_bytes: u64,
        reserve_bytes: u64,
    ) -> Result<Self, StoreError> {
        let reserve = (reserve_bytes > 0).then(|| {
            Arc::new(backend::Reserve::new(
                data_dir.join(backend::Reserve::FILE),
                reserve_bytes,
            ))
        });
        if let Some(r) = &reserve {
            match r.ensure() {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("no room for the storage reserve; the disk is nearly full");
                }
                Err(e) => tracing::warn!(error = %e, "could not create the storage reserve"),
            }
        }
        let path = data_dir.join(Self::FILE);
        let file = crate::files::open_rw(&path).map_err(|e| StoreError::Redb(e.into()))?;
        let db = backend::PreallocBackend::new(file, reserve.clone())
            .and_then(|b| {
                redb::Builder::new()
                    .set_cache_size(cache_size_bytes as usize)
                    .create_with_backend(b)
            })
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.clone()),
                other => StoreError::Redb(other.into()),
            })?;
        let log = crate::files::open_rw(&data_dir.join(Self::WAL_FILE))
            .map_err(|e| StoreError::Redb(e.into()))?;
        let wal = Self::recover(&db, Box::new(log))?;
        // The store and its log may have just been created: their names must survive a power
        // cut too, or the first orders would go with them.
        crate::files::sync_dir(data_dir).map_err(|e| StoreError::Redb(e.into()))?;
        let store = Self {
            db: Arc::new(db),
            path,
            wal: Arc::new(std::sync::Mutex::new(Some(wal))),
            reserve,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens a store on a given redb backend and log file, as [`Store::open`] does on the data
    /// directory's files: the crash tests' simulated disk.
    #[cfg(test)]
    pub(crate) fn open_on(
        backend: impl redb::StorageBackend,
        log: Box<dyn wal::LogFile>,
    ) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(4 * 1024 * 1024)
            .create_with_backend(backend)
            .map_err(|e| StoreError::Redb(e.into()))?;
        let wal = Self::recover(&db, log)?;
        let store = Self {
            db: Arc::new(db),
            path: PathBuf::from("simulated"),
            wal: Arc::new(std::sync::Mutex::new(Some(wal))),
            reserve: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Replays the batches logged since the last checkpoint (after an unclean stop) and makes
    /// them durable, before anything else reads the store.
    fn recover(db: &Database, log: Box<dyn wal::LogFile>) -> Result<wal::Wal, StoreError> {
        let applied = {
            let wtx = db.begin_write()?;
            let seq = match wtx.open_table(tables::COUNTERS) {
                Ok(t) => t.get(writer::WAL_SEQ_KEY)?.map_or(0, |v| v.value()),
                Err(e) => return Err(e.into()),
            };
            wtx.abort()?;
            seq
        };
        let (mut wal, records) =
            wal::Wal::recover(log, applied).map_err(|e| StoreError::Redb(e.into()))?;
        if let Some(&(last, _)) = records.last() {
            let mut wtx = db.begin_write()?;
            wtx.set_durability(redb::Durability::Immediate)?;
            for (_, ops) in &records {
                logged::replay(&wtx, ops)?;
            }
            wtx.commit()?;
            tracing::warn!(
                batches = records.len(),
                last_batch = last,
                "replayed the write-ahead log after an unclean stop"
            );
        }
        wal.reset();
        Ok(wal)
    }

    /// Hands the write-ahead log to the writer (there is one writer per store).
    pub(crate) fn take_wal(&self) -> wal::Wal {
        self.wal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .expect("one writer per store")
    }

    /// Seq of the last batch contained in the store.
    pub(crate) fn wal_seq(&self) -> u64 {
        self.read()
            .ok()
            .and_then(|rtx| rtx.open_table(tables::COUNTERS).ok())
            .and_then(|t| t.get(writer::WAL_SEQ_KEY).ok().flatten().map(|v| v.value()))
            .unwrap_or(0)
    }

    /// Creates missing tables and runs schema migrations, step by step.
    fn migrate(&self) -> Result<(), StoreError> {
        let wtx = self.db.begin_write()?;
        tables::create_all(&wtx)?;
        {
            let mut counters = wtx.open_table(tables::COUNTERS)?;
            let found = counters
                .get(tables::SCHEMA_KEY)?
                .map_or(SCHEMA_VERSION, |v| v.value());
            if found > SCHEMA_VERSION {
                return Err(StoreError::UnknownVersion {
                    what: "schema",
                    version: found as u8,
                });
            }
            // Future schema steps go here: `if found < 2 { migrate_1_to_2(&wtx)?; }`.
            counters.insert(tables::SCHEMA_KEY, SCHEMA_VERSION)?;
        }
        wtx.commit()?;
        Ok(())
    }

    /// A consistent read snapshot.
    pub fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// The underlying database: for the writer and for tests of the store itself. A write
    /// anywhere else would bypass the write-ahead log and the event log.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// The storage reserve, when the daemon keeps one.
    pub fn reserve(&self) -> Option<&Arc<backend::Reserve>> {
        self.reserve.as_ref()
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the file takes on disk.
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Per-table and whole-file figures, for `orderd store-stats`.
    pub fn stats(&self) -> Result<String, StoreError> {
        use redb::{ReadableTableMetadata as _, TableHandle as _};
        use std::fmt::Write as _;
        let mut out = String::new();
        let rtx = self.read()?;
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>14} {:>8} {:>8}",
            "table", "entries", "stored bytes", "leaves", "height"
        );
        for handle in rtx.list_tables()? {
            let name = handle.name().to_owned();
            let t = rtx.open_untyped_table(handle)?;
            let s = t.stats()?;
            let _ = writeln!(
                out,
                "{:<18} {:>10} {:>14} {:>8} {:>8}",
                name,
                t.len()?,
                s.stored_bytes(),
                s.leaf_pages(),
                s.tree_height()
            );
        }
        drop(rtx);
        let wtx = self.db.begin_write()?;
        let s = wtx.stats()?;
        let _ = writeln!(
            out,
            "file {} bytes; allocated {} pages of {} bytes; stored {} bytes, metadata {}, fragmented {}",
            self.file_bytes(),
            s.allocated_pages(),
            s.page_size(),
            s.stored_bytes(),
            s.metadata_bytes(),
            s.fragmented_bytes()
        );
        wtx.abort()?;
        Ok(out)
    }

    /// Writes a consistent copy of the store to `dest` (a new file) from one read snapshot, while
    /// writes go on. The copy carries every table, the schema version and the log position.
    pub fn snapshot(&self, dest: &Path) -> Result<u64, StoreError> {
        let rtx = self.read()?;
        let out = redb::Builder::new()
            .set_cache_size(4 * 1024 * 1024)
            .create(dest)?;
        let wtx = out.begin_write()?;
        let mut rows = 0u64;
        macro_rules! copy {
            ($id:expr, $def:ident) => {{
                let src = rtx.open_table(tables::$def)?;
                let mut dst = wtx.open_table(tables::$def)?;
                for row in src.iter()? {
                    let (k, v) = row?;
                    dst.insert(k.value(), v.value())?;
                    rows += 1;
                }
            }};
        }
        logged::logged_tables!(copy);
        wtx.commit()?;
        Ok(rows)
    }

    /// The latest time the store recorded: the last event's commit time, or the newest order
    /// id's time when retention has pruned every event (0 for a new store). The guarded clock
    /// never goes below it.
    pub fn last_known_ms(&self) -> Result<u64, StoreError> {
        let rtx = self.read()?;
        let events = rtx.open_table(tables::EVENTS)?;
        let event_at = match events.last()? {
            Some((_, v)) => codec::decode::<event_row::EventRow>(v.value())?.at(),
            None => 0,
        };
        let orders = rtx.open_table(tables::ORDERS)?;
        // Order ids are UUIDv7: the top 48 bits are the placing time in ms.
        let order_at = orders.last()?.map_or(0, |(k, _)| (k.value() >> 80) as u64);
        Ok(event_at.max(order_at))
    }

    /// Compacts the file in place (only while nothing else holds the store: `orderd compact`
    /// with the daemon stopped). Returns the file size before and after.
    pub fn compact(&mut self) -> Result<(u64, u64), StoreError> {
        let before = self.file_bytes();
        let db = Arc::get_mut(&mut self.db).ok_or_else(|| {
            StoreError::RolledBack("the store is in use; compaction needs it alone".into())
        })?;
        db.compact()?;
        Ok((before, self.file_bytes()))
    }

    /// The highest event sequence number written so far (0 when none).
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        let rtx = self.read()?;
        let t = rtx.open_table(tables::EVENTS)?;
        Ok(t.last()?.map_or(0, |(k, _)| k.value()))
    }
}
