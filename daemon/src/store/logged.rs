//! Tables whose writes are also recorded, so a batch can be replayed from the write-ahead log.
//!
//! [`Logged`] wraps a redb [`Table`]: reads go straight through (`Deref`), `insert` and
//! `remove` also append `table id | op | key | value` (in redb's own byte encoding of the types)
//! to the batch's [`OpLog`]. [`replay`] applies such a log to a write transaction, table by
//! table. The table ids are fixed here; a new table gets a new id, never a reused one.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::rc::Rc;

use redb::{Key, StorageError, Table, TableDefinition, Value, WriteTransaction};

use super::{StoreError, tables as t};

/// Format of an op log (first byte of every write-ahead-log record). A new format gets a new
/// number; `replay` keeps reading the old ones, so a log left by a crash survives an upgrade.
pub const FORMAT: u8 = 1;

const INSERT: u8 = 1;
const REMOVE: u8 = 2;

/// The row changes of one batch, in order, after a [`FORMAT`] byte.
pub type OpLog = Rc<RefCell<Vec<u8>>>;

/// A new, empty op log.
pub fn new_log() -> OpLog {
    Rc::new(RefCell::new(vec![FORMAT]))
}

/// A table whose writes are recorded in the batch's [`OpLog`].
pub struct Logged<'t, K: Key + 'static, V: Value + 'static> {
    table: Table<'t, K, V>,
    id: u8,
    log: OpLog,
}

impl<'t, K: Key + 'static, V: Value + 'static> Logged<'t, K, V> {
    /// Opens `def` in `wtx`, recording under `id`.
    pub fn open(
        wtx: &'t WriteTransaction,
        def: TableDefinition<K, V>,
        id: u8,
        log: &OpLog,
    ) -> Result<Self, redb::TableError> {
        Ok(Self {
            table: wtx.open_table(def)?,
            id,
            log: Rc::clone(log),
        })
    }

    /// Inserts a row.
    pub fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), StorageError> {
        {
            let mut log = self.log.borrow_mut();
            log.push(self.id);
            log.push(INSERT);
            push_bytes(&mut log, K::as_bytes(key.borrow()).as_ref());
            push_bytes(&mut log, V::as_bytes(value.borrow()).as_ref());
        }
        self.table.insert(key, value)?;
        Ok(())
    }

    /// Removes a row; returns whether it existed.
    pub fn remove<'k>(&mut self, key: impl Borrow<K::SelfType<'k>>) -> Result<bool, StorageError> {
        {
            let mut log = self.log.borrow_mut();
            log.push(self.id);
            log.push(REMOVE);
            push_bytes(&mut log, K::as_bytes(key.borrow()).as_ref());
        }
        Ok(self.table.remove(key)?.is_some())
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> std::ops::Deref for Logged<'t, K, V> {
    type Target = Table<'t, K, V>;

    fn deref(&self) -> &Self::Target {
        &self.table
    }
}

fn push_bytes(log: &mut Vec<u8>, bytes: &[u8]) {
    log.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    log.extend_from_slice(bytes);
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
    if buf.len() < n {
        return Err(StoreError::Codec {
            what: "write-ahead log record",
            detail: "truncated".into(),
        });
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn take_bytes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
    let len = take(buf, 4)?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    take(buf, len)
}

fn apply<K: Key + 'static, V: Value + 'static>(
    wtx: &WriteTransaction,
    def: TableDefinition<K, V>,
    op: u8,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    let mut table = wtx.open_table(def)?;
    match (op, value) {
        (INSERT, Some(v)) => {
            table.insert(K::from_bytes(key), V::from_bytes(v))?;
        }
        _ => {
            table.remove(K::from_bytes(key))?;
        }
    }
    Ok(())
}

/// Calls `$m!(id, TABLE)` for every logged table. Ids are part of the log format.
macro_rules! logged_tables {
    ($m:ident) => {
        $m!(1, ORDERS);
        $m!(2, IDX_ACTIVE);
        $m!(3, IDX_DAY);
        $m!(4, IDX_PHONE);
        $m!(5, IDX_FINISHED);
        $m!(6, MENU);
        $m!(7, STOCK);
        $m!(8, TABLES);
        $m!(9, USERS);
        $m!(10, SESSIONS);
        $m!(11, IDEMPOTENCY);
        $m!(12, COUNTERS);
        $m!(13, EVENTS);
        $m!(14, CURSORS);
        $m!(15, DAILY_SUMMARIES);
        $m!(16, DEVICES);
        $m!(17, PRINT_JOBS);
        $m!(18, PRINT_OPEN);
        $m!(19, OTP);
        $m!(20, CUSTOMER_TOKENS);
        $m!(21, OUTBOX);
        $m!(22, OUTBOX_OPEN);
        $m!(23, ORDER_CONTACTS);
        $m!(24, TELEGRAM_CHATS);
        $m!(25, TELEGRAM_LINKS);
        $m!(26, CHECKS);
        $m!(27, CHECKS_OPEN);
        $m!(28, TABLE_CHECKS);
        $m!(29, ORDER_CHECKS);
        $m!(30, PAY_KEYS);
        $m!(31, LEDGER);
        $m!(32, Z_REPORTS);
        $m!(33, PINS);
    };
}
pub(crate) use logged_tables;

/// The write-ahead log id of each logged table, by the table's name, from [`logged_tables!`]
/// alone: the writer opens each table with its own id ([`open_logged!`]), so two tables cannot
/// swap ids, and a test checks that no id is used twice.
pub mod wal_id {
    macro_rules! id {
        ($id:expr, $def:ident) => {
            #[doc = concat!("Log id of `", stringify!($def), "`.")]
            pub const $def: u8 = $id;
        };
    }
    super::logged_tables!(id);
}

/// `Logged::open(wtx, tables::NAME, wal_id::NAME, log)`: a logged table opened with its own id.
macro_rules! open_logged {
    ($wtx:expr, $def:ident, $log:expr) => {
        $crate::store::logged::Logged::open(
            $wtx,
            $crate::store::tables::$def,
            $crate::store::logged::wal_id::$def,
            $log,
        )
    };
}
pub(crate) use open_logged;

/// Applies one batch's row changes.
pub fn replay(wtx: &WriteTransaction, log: &[u8]) -> Result<(), StoreError> {
    let Some((&format, mut log)) = log.split_first() else {
        return Ok(());
    };
    if format != FORMAT {
        return Err(StoreError::UnknownVersion {
            what: "write-ahead log record",
            version: format,
        });
    }
    while !log.is_empty() {
        let head = take(&mut log, 2)?;
        let (id, op) = (head[0], head[1]);
        let key = take_bytes(&mut log)?;
        let value = if op == INSERT {
            Some(take_bytes(&mut log)?)
        } else {
            None
        };
        let mut known = false;
        macro_rules! dispatch {
            ($id:expr, $def:ident) => {
                if id == $id {
                    known = true;
                    apply(wtx, t::$def, op, key, value)?;
                }
            };
        }
        logged_tables!(dispatch);
        if !known {
            return Err(StoreError::Codec {
                what: "write-ahead log record",
                detail: format!("unknown table id {id}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase as _;

    use super::*;

    #[test]
    fn every_logged_table_has_its_own_log_id() {
        let mut ids = Vec::new();
        macro_rules! collect {
            ($id:expr, $def:ident) => {
                ids.push(($id, stringify!($def)));
            };
        }
        logged_tables!(collect);
        let mut seen = std::collections::BTreeMap::new();
        for (id, name) in &ids {
            assert!(*id != 0, "{name}: id 0 is not a table");
            if let Some(other) = seen.insert(*id, *name) {
                panic!("log id {id} is used by both {other} and {name}");
            }
        }
        assert_eq!(
            wal_id::ORDERS,
            1,
            "ids are part of the log format and never change"
        );
        assert_eq!(wal_id::TELEGRAM_LINKS, 25);
    }

    #[test]
    fn replay_applies_its_format_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let log = new_log();
        {
            let wtx = db.begin_write().unwrap();
            let mut counters = Logged::open(&wtx, t::COUNTERS, 12, &log).unwrap();
            counters.insert("a", 7).unwrap();
            counters.insert("b", 8).unwrap();
            counters.remove("a").unwrap();
            drop(counters);
            wtx.abort().unwrap(); // only the log is kept
        }
        let bytes: Vec<u8> = RefCell::borrow(&log).clone();
        assert_eq!(bytes[0], FORMAT);
        let wtx = db.begin_write().unwrap();
        replay(&wtx, &bytes).unwrap();
        wtx.commit().unwrap();
        let rtx = db.begin_read().unwrap();
        let counters = rtx.open_table(t::COUNTERS).unwrap();
        assert!(counters.get("a").unwrap().is_none());
        assert_eq!(counters.get("b").unwrap().unwrap().value(), 8);
        drop((counters, rtx));
        let mut future = bytes.clone();
        future[0] = FORMAT + 1;
        let wtx = db.begin_write().unwrap();
        assert!(matches!(
            replay(&wtx, &future),
            Err(StoreError::UnknownVersion { .. })
        ));
        assert!(
            replay(&wtx, &bytes[..bytes.len() - 1]).is_err(),
            "a truncated log is an error"
        );
    }
}
