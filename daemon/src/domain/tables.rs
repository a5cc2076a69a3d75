//! Tables: a label, a zone, and the random QR token a customer's phone presents to order.
//! Admins can rotate a token (a photographed QR code then stops working).

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use super::random_hex;
use crate::error::AppError;
use crate::error::TxResult;
use crate::store::writer::Tx;
use crate::store::{StoreError, Stored, codec, tables as t};

/// A table in the restaurant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Stable id.
    pub id: String,
    /// What is written on the table ("T4").
    pub label: String,
    /// Area ("terrace").
    pub zone: String,
    /// The secret in the table's QR code (128 random bits, hex).
    pub qr_token: String,
    /// When it was created, ms.
    pub created_at: u64,
}

impl Stored for Table {
    const WHAT: &'static str = "table";
}

/// The body of `POST /tables`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTable {
    /// Label.
    pub label: String,
    /// Zone.
    #[serde(default)]
    pub zone: String,
}

/// A fresh QR token.
pub fn new_token() -> String {
    random_hex(16)
}

/// Adds a table. Labels are unique (case-insensitive).
pub fn add(tx: &mut Tx<'_>, req: &NewTable) -> TxResult<Table> {
    let label = req.label.trim();
    if label.is_empty() || label.chars().count() > 32 {
        return Err(AppError::invalid("label", "1 to 32 characters").into());
    }
    if req.zone.chars().count() > 32 {
        return Err(AppError::invalid("zone", "at most 32 characters").into());
    }
    for row in tx.tables.iter()? {
        let existing: Table = codec::decode(row?.1.value())?;
        if existing.label.eq_ignore_ascii_case(label) {
            return Err(AppError::new(
                crate::error::ErrorKind::Conflict,
                "duplicate_label",
                format!("a table labelled {label:?} exists"),
            )
            .into());
        }
    }
    let table = Table {
        id: format!("tbl_{}", random_hex(6)),
        label: label.to_owned(),
        zone: req.zone.trim().to_owned(),
        qr_token: new_token(),
        created_at: tx.now_ms(),
    };
    tx.tables
        .insert(table.id.as_str(), codec::encode(&table)?.as_slice())?;
    Ok(table)
}

/// Removes a table (its orders keep their snapshot of the label).
pub fn delete(tx: &mut Tx<'_>, id: &str) -> TxResult<()> {
    if !tx.tables.remove(id)? {
        return Err(AppError::not_found("table").into());
    }
    Ok(())
}

/// Gives a table a new QR token; the old one stops working at once.
pub fn rotate(tx: &mut Tx<'_>, id: &str) -> TxResult<Table> {
    let mut table: Table = match tx.tables.get(id)? {
        Some(v) => codec::decode(v.value())?,
        None => return Err(AppError::not_found("table").into()),
    };
    table.qr_token = new_token();
    tx.tables.insert(id, codec::encode(&table)?.as_slice())?;
    Ok(table)
}

/// Every table, by label.
pub fn list(rtx: &ReadTransaction) -> Result<Vec<Table>, StoreError> {
    let tbl = rtx.open_table(t::TABLES)?;
    let mut out = Vec::new();
    for row in tbl.iter()? {
        out.push(codec::decode::<Table>(row?.1.value())?);
    }
    out.sort_by_key(|a| natural_key(&a.label));
    Ok(out)
}

/// The table whose QR token this is, compared in constant time against every table (no early
/// exit, so timing does not tell how many tables were checked).
pub fn matching(tables: impl IntoIterator<Item = Table>, token: &str) -> Option<Table> {
    use subtle::ConstantTimeEq as _;
    let mut found = None;
    for table in tables {
        if bool::from(table.qr_token.as_bytes().ct_eq(token.as_bytes())) {
            found = Some(table);
        }
    }
    found
}

/// [`matching`] over the stored tables (for reads outside the writer).
pub fn find_by_token(rtx: &ReadTransaction, token: &str) -> Result<Option<Table>, StoreError> {
    Ok(matching(list(rtx)?, token))
}

/// Sorts "T2" before "T10".
fn natural_key(label: &str) -> (String, u64) {
    let digits: String = label.chars().filter(char::is_ascii_digit).collect();
    let text: String = label.chars().filter(|c| !c.is_ascii_digit()).collect();
    (text, digits.parse().unwrap_or(0))
}
