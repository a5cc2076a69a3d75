//! The file backend under redb: redb's own `FileBackend`, plus allocating the blocks whenever
//! the file grows, and the reserve it falls back on when growing hits a full disk.
//!
//! redb grows its file with `set_len`, which leaves a sparse hole: a later write into the hole
//! makes the filesystem find blocks, and on a full disk that write fails, long after the growth
//! succeeded. So growth also allocates the new range with `fallocate`, which reserves the blocks
//! at once without writing them (reads still see zeros). Where the filesystem cannot
//! `fallocate`, zeros are written over the new range instead.
//!
//! Not zeros first: redb grows by doubling, and writing 80 MB of zeros took 30 ms plus the
//! write-back behind it, while redb held the lock every new read transaction takes — the whole
//! daemon (HTTP, kitchen tickets) stalled for 70–170 ms at each growth (docs/BENCHMARKS.md,
//! session 10). `fallocate` takes well under a millisecond. The price: a first write into a
//! fallocated range turns its extents from unwritten to written, metadata that the next
//! checkpoint's `fdatasync` also journals. Checkpoints are rare (each batch is made durable by
//! the write-ahead log), and the 10-minute kitchen runs include that cost; it was not measured
//! on its own.
//!
//! redb treats any I/O error as fatal until the database is reopened, so a full disk must never
//! reach it. Writes inside the file never need new blocks (they are allocated already); only
//! growth does. When growth fails for want of space, the backend deletes the [`Reserve`] — a
//! file of zeros kept next to the store — and tries once more. The storage budget
//! (`crate::storage`) refuses new orders well before that, and recreates the reserve once space
//! is back.

use std::fs::File;
use std::io::{self, Write as _};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{BackendError, StorageBackend, backends::FileBackend};

/// Zero-fill chunk size.
const CHUNK: usize = 1024 * 1024;

/// Whether an I/O error means the disk is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    e.raw_os_error() == Some(28) || e.kind() == io::ErrorKind::StorageFull
}

/// Space set aside for the store: `orderd.reserve`, a file of zeros given up when the store
/// must grow on a full disk.
#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
    bytes: u64,
    /// Times the reserve was given up (for the status).
    released: AtomicU64,
}

impl Reserve {
    /// File name inside the data directory.
    pub const FILE: &'static str = "orderd.reserve";

    /// A reserve of `bytes` at `path` (not created yet; see [`Reserve::ensure`]).
    pub fn new(path: PathBuf, bytes: u64) -> Self {
        Self {
            path,
            bytes,
            released: AtomicU64::new(0),
        }
    }

    /// Whether the reserve file is there, whole: its length, and its blocks on the disk (a file
    /// cut by a power cut can have its full length and holes instead of blocks).
    pub fn in_place(&self) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&self.path)
            .is_ok_and(|m| m.len() == self.bytes && m.blocks().saturating_mul(512) >= self.bytes)
    }

    /// Its size.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many times it was given up.
    pub fn released(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }

    /// Creates the reserve file if it is missing. `Ok(false)` when there is not enough space
    /// (nothing is left behind then).
    pub fn ensure(&self) -> io::Result<bool> {
        if self.bytes == 0 || self.in_place() {
            return Ok(true);
        }
        let tmp = self.path.with_extension("reserve.tmp");
        let written = (|| {
            let mut f = crate::files::create(&tmp)?;
            let zeros = vec![0u8; CHUNK];
            let mut left = self.bytes;
            while left > 0 {
                let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            // No fsync of the data: the blocks are allocated now, which is all the reserve is
            // for; a file cut short or left with holes by a power cut is made again at the
            // next start (`in_place` checks its blocks).
            std::fs::rename(&tmp, &self.path)?;
            match self.path.parent() {
                Some(dir) => crate::files::sync_dir(dir),
                None => Ok(()),
            }
        })();
        match written {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                if is_disk_full(&e) { Ok(false) } else { Err(e) }
            }
        }
    }

    /// Deletes the reserve file; whether there was one to give up.
    pub fn release(&self) -> bool {
        let freed = std::fs::remove_file(&self.path).is_ok();
        if freed {
            self.released.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                file = %self.path.display(),
                "the disk is full: gave up the storage reserve so the store could grow; free space on the data directory's disk"
            );
        }
        freed
    }
}

/// redb's file backend with allocated (not sparse) growth.
#[derive(Debug)]
pub struct PreallocBackend {
    inner: FileBackend,
    /// The same file, to `fallocate` on.
    file: File,
    reserve: Option<Arc<Reserve>>,
}

impl PreallocBackend {
    /// Wraps an open file; `reserve` is given up when growth hits a full disk.
    pub fn new(file: File, reserve: Option<Arc<Reserve>>) -> Result<Self, redb::DatabaseError> {
        let own = file.try_clone()?;
        Ok(Self {
            inner: FileBackend::new(file)?,
            file: own,
            reserve,
        })
    }

    fn grow(&self, old: u64, len: u64) -> Result<(), io::Error> {
        self.inner.set_len(len)?;
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::empty(),
            old,
            len - old,
        ) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::NOSPC => return Err(e.into()),
            // Not supported here (some network and overlay filesystems): write zeros.
            Err(_) => {}
        }
        let zeros = vec![0; CHUNK];
        let mut at = old;
        while at < len {
            let n = usize::try_from(len - at).map_or(CHUNK, |r| r.min(CHUNK));
            self.inner.write(at, &zeros[..n])?;
            at += n as u64;
        }
        Ok(())
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
        if len <= old {
            return self.inner.set_len(len);
        }
        match self.grow(old, len) {
            Err(e) if is_disk_full(&e) && self.reserve.as_ref().is_some_and(|r| r.release()) => {
                self.grow(old, len).inspect_err(|_| {
                    // Leave the file as it was, so the space taken is given back.
                    let _ = self.inner.set_len(old);
                })
            }
            Err(e) => {
                if is_disk_full(&e) {
                    let _ = self.inner.set_len(old);
                }
                Err(e)
            }
            ok => ok,
        }
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        bench_slow_sync();
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

/// Benchmarks only (`scripts/bench.sh`'s slow-card mode): the environment variable
/// `ORDERD_BENCH_SYNC_DELAY_MS` adds that many milliseconds to every sync of the store and its
/// log, as an SD card's fsync takes. Read once; unset (always, in service) it costs nothing.
pub fn bench_slow_sync() {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        std::env::var("ORDERD_BENCH_SYNC_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&ms| ms > 0)
            .map(std::time::Duration::from_millis)
    });
    if let Some(d) = delay {
        std::thread::sleep(*d);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    /// After a power cut the reserve can have its whole length and holes instead of blocks:
    /// it is not taken for whole, and the next start writes it again.
    #[test]
    fn a_reserve_with_holes_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = 4 * 1024 * 1024;
        let reserve = Reserve::new(dir.path().join(Reserve::FILE), bytes);
        assert!(!reserve.in_place());
        // Full length, no blocks: what a cut before the data reached the disk can leave.
        File::create(dir.path().join(Reserve::FILE))
            .unwrap()
            .set_len(bytes)
            .unwrap();
        assert!(!reserve.in_place(), "a sparse file is no reserve");
        assert!(reserve.ensure().unwrap());
        assert!(reserve.in_place());
        let meta = std::fs::metadata(dir.path().join(Reserve::FILE)).unwrap();
        assert!(meta.blocks() * 512 >= bytes);
    }

    #[test]
    fn growth_allocates_the_new_range_and_reads_back_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let backend = PreallocBackend::new(file, None).unwrap();
        backend.write(0, b"head").unwrap();
        let len = 8 * 1024 * 1024;
        backend.set_len(len).unwrap();
        assert_eq!(backend.len().unwrap(), len);
        // Allocated, not a sparse hole: later writes inside the file never need new blocks.
        let meta = std::fs::metadata(&path).unwrap();
        assert!(
            meta.blocks() * 512 >= len,
            "{} bytes allocated of {len}",
            meta.blocks() * 512
        );
        let mut head = [0; 4];
        backend.read(0, &mut head).unwrap();
        assert_eq!(&head, b"head");
        let mut tail = vec![1; 4096];
        backend.read(len - 4096, &mut tail).unwrap();
        assert!(tail.iter().all(|&b| b == 0));
        // Shrinking is plain truncation.
        backend.set_len(4096).unwrap();
        assert_eq!(backend.len().unwrap(), 4096);
    }
}
