//! Power-loss tests: the store's redb file and its write-ahead log on a simulated disk that
//! keeps only what was synced, and at a power cut drops, keeps or tears (cuts short) each
//! write made since the last sync, at random, for both files at the same instant.
//!
//! Each round opens the store on the disk a cut left (recovery and log replay included), checks
//! that every batch ever acknowledged is there whole and that no batch is there in part, then
//! writes from several clients at once until the next cut. Cuts land anywhere: between a log
//! write and its sync, inside a checkpoint, inside the replay of the round's start (the replay
//! writes to redb and syncs), and while a batch is being written.

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{ReadableTableMetadata as _, StorageBackend};

use super::writer::tests::spawn_bare;
use super::writer::{Tx, TxError, TxResult, Writer, WriterOptions};
use super::{Store, StoreError, tables as t, wal::LogFile};

/// A small random generator with a fixed seed, so a failing cut can be run again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A write or a length change made since the file's last sync.
#[derive(Debug, Clone)]
enum Unsynced {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

fn apply(bytes: &mut Vec<u8>, op: &Unsynced) {
    match op {
        Unsynced::Write(offset, data) => {
            let at = usize::try_from(*offset).unwrap();
            if bytes.len() < at + data.len() {
                bytes.resize(at + data.len(), 0);
            }
            bytes[at..at + data.len()].copy_from_slice(data);
        }
        Unsynced::SetLen(len) => bytes.resize(usize::try_from(*len).unwrap(), 0),
    }
}

#[derive(Debug, Default)]
struct DiskFile {
    /// What the process reads.
    current: Vec<u8>,
    /// What survives a power cut for sure.
    durable: Vec<u8>,
    unsynced: Vec<Unsynced>,
}

/// The simulated disk's power: cut after a number of writes and syncs (to any of its files).
#[derive(Debug)]
struct Power {
    cut: AtomicBool,
    left: AtomicI64,
}

impl Power {
    fn for_ops(n: i64) -> Arc<Self> {
        Arc::new(Self {
            cut: AtomicBool::new(false),
            left: AtomicI64::new(n),
        })
    }

    /// How many writes and syncs were made, for a power that was never meant to go.
    fn spent(&self) -> i64 {
        i64::MAX - self.left.load(Ordering::SeqCst)
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// One more write or sync: fails once the power is cut.
    fn spend(&self) -> io::Result<()> {
        if self.left.fetch_sub(1, Ordering::SeqCst) <= 1 {
            self.cut.store(true, Ordering::SeqCst);
        }
        if self.is_cut() {
            Err(io::Error::other("the power is cut"))
        } else {
            Ok(())
        }
    }
}

/// One file on the simulated disk. Once the disk's power is cut, every write and sync fails.
#[derive(Debug, Clone)]
struct SimFile {
    file: Arc<Mutex<DiskFile>>,
    power: Arc<Power>,
}

impl SimFile {
    fn new(bytes: Vec<u8>, power: Arc<Power>) -> Self {
        let file = DiskFile {
            current: bytes.clone(),
            durable: bytes,
            unsynced: Vec::new(),
        };
        Self {
            file: Arc::new(Mutex::new(file)),
            power,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DiskFile> {
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn change(&self, op: Unsynced) -> io::Result<()> {
        self.power.spend()?;
        let mut f = self.lock();
        apply(&mut f.current, &op);
        f.unsynced.push(op);
        Ok(())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let f = self.lock();
        let at = usize::try_from(offset).unwrap();
        let Some(bytes) = f.current.get(at..at + out.len()) else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.power.spend()?;
        let mut f = self.lock();
        let ops = std::mem::take(&mut f.unsynced);
        for op in &ops {
            apply(&mut f.durable, op);
        }
        Ok(())
    }

    /// What is on the disk after the cut: the synced bytes, then each later write kept,
    /// dropped or torn to a prefix, at random.
    fn after_cut(&self, rng: &mut Rng) -> Vec<u8> {
        let f = self.lock();
        let mut bytes = f.durable.clone();
        for op in &f.unsynced {
            match (rng.below(3), op) {
                (0, _) => apply(&mut bytes, op),
                // Torn: only a prefix reached the disk.
                (2, Unsynced::Write(offset, data)) => {
                    let keep = usize::try_from(rng.below(data.len() as u64 + 1)).unwrap();
                    apply(&mut bytes, &Unsynced::Write(*offset, data[..keep].to_vec()));
                }
                // Dropped.
                _ => {}
            }
        }
        bytes
    }
}

impl StorageBackend for SimFile {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.lock().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        SimFile::read(self, offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.change(Unsynced::SetLen(len))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.sync()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.change(Unsynced::Write(offset, data.to_vec()))
    }

    fn close(&self) -> Result<(), io::Error> {
        Ok(())
    }
}

impl LogFile for SimFile {
    fn byte_len(&self) -> io::Result<u64> {
        Ok(self.lock().current.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read(offset, buf)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.change(Unsynced::Write(offset, buf.to_vec()))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }
}

/// What the test's jobs fail with (they never refuse; only the store fails).
#[derive(Debug)]
struct Failed;

impl From<StoreError> for Failed {
    fn from(_: StoreError) -> Self {
        Self
    }
}

/// Batch `i`'s rows: one in every logged table, so a batch is whole or absent in all of them.
fn write_everywhere(tx: &mut Tx<'_>, batch: u64) -> TxResult<(), Failed> {
    let key = u128::from(batch);
    let value: &[u8] = &batch.to_le_bytes();
    let name = format!("k{batch:08}");
    let name = name.as_str();
    let key32 = {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&batch.to_le_bytes());
        bytes
    };
    tx.orders.insert(key, value)?;
    tx.idx_active.insert((1, key), ())?;
    tx.idx_day.insert((1, u32::try_from(batch).unwrap()), key)?;
    tx.idx_phone.insert(("+355", key), ())?;
    tx.idx_finished.insert((batch, key), ())?;
    tx.menu_table.insert(name, value)?;
    tx.stock.insert(name, 1)?;
    tx.tables.insert(name, value)?;
    tx.users.insert(name, value)?;
    tx.sessions.insert(key32, value)?;
    tx.idempotency.insert(name, value)?;
    tx.counters.insert(name, batch)?;
    tx.cursors.insert(name, batch)?;
    tx.daily_summaries
        .insert(u32::try_from(batch).unwrap(), value)?;
    tx.devices.insert(name, value)?;
    tx.print_jobs.insert(name, value)?;
    tx.print_open.insert(name, ())?;
    tx.otp.insert(name, value)?;
    tx.customer_tokens.insert(key32, value)?;
    tx.outbox.insert(batch, value)?;
    tx.outbox_open.insert(batch, ())?;
    tx.order_contacts.insert(key, value)?;
    tx.telegram_chats.insert(name, 1)?;
    tx.telegram_links.insert(name, "x")?;
    tx.checks.insert(batch, value)?;
    tx.checks_open.insert(batch, ())?;
    tx.table_checks.insert(name, batch)?;
    tx.order_checks.insert(key, batch)?;
    tx.pay_keys.insert(name, value)?;
    tx.ledger.insert((1, batch), value)?;
    tx.z_reports.insert(u32::try_from(batch).unwrap(), value)?;
    tx.pins.insert(name, "h")?;
    // The event log: a batch's events get the next seqs, in order.
    tx.emit(orderd_protocol::EventKind::MenuReplaced {
        items: u32::try_from(batch).unwrap(),
    })
    .map_err(TxError::Store)?;
    Ok(())
}

/// How many logged tables hold batch `i`'s rows (all 33, or none).
fn tables_holding(store: &Store, batch: u64) -> usize {
    let rtx = store.read().unwrap();
    let key = u128::from(batch);
    let name = format!("k{batch:08}");
    let name = name.as_str();
    let mut key32 = [0u8; 32];
    key32[..8].copy_from_slice(&batch.to_le_bytes());
    let day = u32::try_from(batch).unwrap();
    macro_rules! has {
        ($($table:ident[$key:expr]),* $(,)?) => {
            [$(rtx.open_table(t::$table).unwrap().get($key).unwrap().is_some()),*]
        };
    }
    has![
        ORDERS[key],
        IDX_ACTIVE[(1u8, key)],
        IDX_DAY[(1u32, day)],
        IDX_PHONE[("+355", key)],
        IDX_FINISHED[(batch, key)],
        MENU[name],
        STOCK[name],
        TABLES[name],
        USERS[name],
        SESSIONS[key32],
        IDEMPOTENCY[name],
        COUNTERS[name],
        CURSORS[name],
        DAILY_SUMMARIES[day],
        DEVICES[name],
        PRINT_JOBS[name],
        PRINT_OPEN[name],
        OTP[name],
        CUSTOMER_TOKENS[key32],
        OUTBOX[batch],
        OUTBOX_OPEN[batch],
        ORDER_CONTACTS[key],
        TELEGRAM_CHATS[name],
        TELEGRAM_LINKS[name],
        CHECKS[batch],
        CHECKS_OPEN[batch],
        TABLE_CHECKS[name],
        ORDER_CHECKS[key],
        PAY_KEYS[name],
        LEDGER[(1u32, batch)],
        Z_REPORTS[day],
        PINS[name],
    ]
    .iter()
    .filter(|&&b| b)
    .count()
}

const TABLES_PER_BATCH: usize = 32;

/// Checks a store a cut left: every batch ever answered is there whole, every other one is
/// whole or absent, and no event is there without its batch.
fn check(store: &Store, tried: u64, acked: &BTreeSet<u64>) {
    for i in 1..tried {
        let n = tables_holding(store, i);
        assert!(
            n == TABLES_PER_BATCH || (n == 0 && !acked.contains(&i)),
            "batch {i} (answered: {}) is in {n} of {TABLES_PER_BATCH} tables",
            acked.contains(&i)
        );
    }
    let rtx = store.read().unwrap();
    let events = rtx.open_table(t::EVENTS).unwrap().len().unwrap();
    let whole = (1..tried)
        .filter(|&i| tables_holding(store, i) == TABLES_PER_BATCH)
        .count() as u64;
    assert_eq!(events, whole, "one event per batch there");
}

/// One round: open what the last cut left (the power may go during the replay), check it,
/// write from four clients until the power goes, and return what the disk then holds, and
/// whether the store opened before the power went.
async fn round(
    rng: &mut Rng,
    images: (Vec<u8>, Vec<u8>),
    next_id: &AtomicU64,
    acked: &Mutex<BTreeSet<u64>>,
) -> ((Vec<u8>, Vec<u8>), bool) {
    // How many writes and syncs opening this disk takes (recovery, replay, its checkpoint):
    // opening is deterministic, so a dry run on a copy counts them. One round in three is cut
    // inside the opening; the others after it, while the clients write. Choosing the cut from
    // the count, rather than from a guess, keeps cuts inside the replay on any machine's timing.
    let opening = {
        let power = Power::for_ops(i64::MAX);
        let db = SimFile::new(images.0.clone(), Arc::clone(&power));
        let log = SimFile::new(images.1.clone(), Arc::clone(&power));
        let store = Store::open_on(db, Box::new(log)).expect("the disk a cut left opens");
        let spent = power.spent();
        drop(store);
        spent
    };
    let budget = if opening > 1 && rng.below(3) == 0 {
        1 + i64::try_from(rng.below(u64::try_from(opening - 1).unwrap())).unwrap()
    } else {
        opening + 1 + i64::try_from(rng.below(1500)).unwrap()
    };
    let power = Power::for_ops(budget);
    let db = SimFile::new(images.0, Arc::clone(&power));
    let log = SimFile::new(images.1, Arc::clone(&power));
    let Ok(store) = Store::open_on(db.clone(), Box::new(log.clone())) else {
        // The power went while the store was opening (replay, checkpoint): nothing was answered.
        assert!(power.is_cut(), "the store did not open with the power on");
        return ((db.after_cut(rng), log.after_cut(rng)), false);
    };
    let tried = next_id.load(Ordering::SeqCst);
    check(&store, tried, &acked.lock().unwrap());
    let (writer, thread) = spawn_bare(
        store,
        WriterOptions {
            max_batch: 16,
            // Checkpoints often, so cuts land inside them too.
            checkpoint_interval: std::time::Duration::from_millis(5),
            checkpoint_batches: 8,
        },
    );
    let clients = (0..4).map(|_| {
        let writer: Writer = writer.clone();
        let power = Arc::clone(&power);
        async move {
            let mut mine = Vec::new();
            while !power.is_cut() {
                let i = next_id.fetch_add(1, Ordering::SeqCst);
                if writer
                    .submit::<_, Failed, _>(move |tx| write_everywhere(tx, i), false)
                    .await
                    .is_ok()
                {
                    mine.push(i);
                }
            }
            mine
        }
    });
    let answered = futures::future::join_all(clients).await;
    acked.lock().unwrap().extend(answered.into_iter().flatten());
    drop(writer);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    ((db.after_cut(rng), log.after_cut(rng)), true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answered_batch_is_lost_and_none_is_half_there_across_power_cuts() {
    let mut rng = Rng(0x0d15_ea5e_5eed_0001);
    let next_id = AtomicU64::new(1);
    let acked = Mutex::new(BTreeSet::new());
    let mut images = (Vec::new(), Vec::new());
    let mut cut_while_opening = 0;
    for _ in 0..60 {
        let opened;
        (images, opened) = round(&mut rng, images, &next_id, &acked).await;
        cut_while_opening += u32::from(!opened);
    }
    assert!(
        (1..60).contains(&cut_while_opening),
        "cuts while opening (the replay, its checkpoint): {cut_while_opening} of 60"
    );
    // The last cut's disk, opened with the power on.
    let power = Power::for_ops(i64::MAX);
    let store = Store::open_on(
        SimFile::new(images.0, Arc::clone(&power)),
        Box::new(SimFile::new(images.1, power)),
    )
    .unwrap();
    let answered = acked.lock().unwrap().clone();
    check(&store, next_id.load(Ordering::SeqCst), &answered);
    assert!(
        answered.len() > 200,
        "the cuts left room to write: {} batches answered",
        answered.len()
    );
}
