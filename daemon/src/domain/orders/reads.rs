//! Reading orders back through the indexes: one, a customer's, the active ones, the kitchen's
//! open work, recent, by business day, and search.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A customer's own orders (placed by a customer with this verified phone), newest first.
pub fn customer_orders(
    rtx: &ReadTransaction,
    phone: &str,
    max: usize,
) -> Result<Vec<Order>, StoreError> {
    let idx = rtx.open_table(t::IDX_PHONE)?;
    let mut out = Vec::new();
    for entry in idx.range((phone, 0u128)..=(phone, u128::MAX))?.rev() {
        let key = entry?.0.value().1;
        if let Some(stored) = get_by_key(rtx, key)?
            && stored.order.source == OrderSource::Customer
        {
            out.push(stored.order);
        }
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// Reads one order with its history.
pub fn get(rtx: &ReadTransaction, id: &str) -> Result<Option<StoredOrder>, StoreError> {
    let Some(key) = parse_id(id) else {
        return Ok(None);
    };
    get_by_key(rtx, key)
}

/// Reads one order by key.
pub fn get_by_key(rtx: &ReadTransaction, key: u128) -> Result<Option<StoredOrder>, StoreError> {
    let t = rtx.open_table(t::ORDERS)?;
    Ok(match t.get(key)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

/// A page of results and the total count.
pub struct Page<T> {
    /// The items on this page.
    pub data: Vec<T>,
    /// How many there are in all.
    pub total: u64,
}

pub(super) fn load_keys(rtx: &ReadTransaction, keys: &[u128]) -> Result<Vec<Order>, StoreError> {
    Ok(load_stored(rtx, keys)?
        .into_iter()
        .map(|s| s.order)
        .collect())
}

pub(super) fn load_stored(
    rtx: &ReadTransaction,
    keys: &[u128],
) -> Result<Vec<StoredOrder>, StoreError> {
    let t = rtx.open_table(t::ORDERS)?;
    let mut out = Vec::with_capacity(keys.len());
    for &k in keys {
        if let Some(v) = t.get(k)? {
            out.push(codec::decode::<StoredOrder>(v.value())?);
        }
    }
    Ok(out)
}

pub(super) fn page_of(keys: &[u128], page: u32, limit: u32) -> &[u128] {
    let start = (page.saturating_sub(1) as usize).saturating_mul(limit as usize);
    if start >= keys.len() {
        return &[];
    }
    let end = (start + limit as usize).min(keys.len());
    &keys[start..end]
}

/// Orders not finished yet, oldest first, with the stations that bumped their part.
pub fn active(
    rtx: &ReadTransaction,
    page: u32,
    limit: u32,
) -> Result<Page<StoredOrder>, StoreError> {
    let idx = rtx.open_table(t::IDX_ACTIVE)?;
    let mut keys = Vec::new();
    for row in idx.iter()? {
        keys.push(row?.0.value().1);
    }
    keys.sort_unstable();
    let data = load_stored(rtx, page_of(&keys, page, limit))?;
    Ok(Page {
        data,
        total: keys.len() as u64,
    })
}

/// Orders the kitchen still works on (placed, accepted, preparing) whose key is past `after`,
/// oldest first, handed to `f` one at a time, with their kitchen marks (bumps, allergy), until
/// it returns false. A merge of the active
/// index's three status ranges: the kitchen's boards load only what they show, however many
/// orders stay open.
pub fn kitchen_after(
    rtx: &ReadTransaction,
    after: Option<u128>,
    mut f: impl FnMut(Order, KitchenMarks) -> bool,
) -> Result<(), StoreError> {
    let idx = rtx.open_table(t::IDX_ACTIVE)?;
    let orders = rtx.open_table(t::ORDERS)?;
    let from = after.map_or(0, |a| a.saturating_add(1));
    let mut ranges = Vec::new();
    for status in [
        OrderStatus::Placed,
        OrderStatus::Accepted,
        OrderStatus::Preparing,
    ] {
        let code = status.code();
        ranges.push(idx.range((code, from)..=(code, u128::MAX))?.peekable());
    }
    loop {
        // The smallest next key over the three ranges.
        let mut best: Option<(usize, u128)> = None;
        for (i, r) in ranges.iter_mut().enumerate() {
            if let Some(Ok(row)) = r.peek() {
                let key = row.0.value().1;
                if best.is_none_or(|(_, k)| key < k) {
                    best = Some((i, key));
                }
            } else if let Some(Err(_)) = r.peek() {
                // Surface the storage error.
                r.next().transpose()?;
            }
        }
        let Some((i, key)) = best else {
            return Ok(());
        };
        ranges[i].next();
        if let Some(v) = orders.get(key)? {
            let stored: StoredOrder = codec::decode(v.value())?;
            let marks = stored.kitchen_marks();
            if !f(stored.order, marks) {
                return Ok(());
            }
        }
    }
}

/// Orders finished since `since_ms`, newest first.
pub fn recent(
    rtx: &ReadTransaction,
    since_ms: u64,
    page: u32,
    limit: u32,
) -> Result<Page<Order>, StoreError> {
    let idx = rtx.open_table(t::IDX_FINISHED)?;
    let mut keys = Vec::new();
    for row in idx.range((since_ms, 0u128)..)?.rev() {
        keys.push(row?.0.value().1);
    }
    let data = load_keys(rtx, page_of(&keys, page, limit))?;
    Ok(Page {
        data,
        total: keys.len() as u64,
    })
}

/// Keys of every order of a business day, in number order.
pub fn day_keys(rtx: &ReadTransaction, day: u32) -> Result<Vec<u128>, StoreError> {
    let idx = rtx.open_table(t::IDX_DAY)?;
    let mut keys = Vec::new();
    for row in idx.range((day, 0u32)..=(day, u32::MAX))? {
        keys.push(row?.1.value());
    }
    Ok(keys)
}

/// Orders of a business day, in number order.
pub fn by_day(
    rtx: &ReadTransaction,
    day: u32,
    page: u32,
    limit: u32,
) -> Result<Page<Order>, StoreError> {
    let keys = day_keys(rtx, day)?;
    let data = load_keys(rtx, page_of(&keys, page, limit))?;
    Ok(Page {
        data,
        total: keys.len() as u64,
    })
}

/// Searches by order number (whole, or today's short number), phone (prefix) or customer name
/// (substring, over the last 7 business days), newest first.
pub fn search(
    rtx: &ReadTransaction,
    rules: &Rules,
    now_ms: u64,
    q: &str,
    page: u32,
    limit: u32,
) -> Result<Page<Order>, StoreError> {
    let q = q.trim();
    let mut keys: Vec<u128> = Vec::new();
    let today = rules.business_day(now_ms);
    if q.contains('-') {
        // PREFIX-YYYYMMDD-NNN: the day and number locate it in the day index.
        let mut parts = q.rsplit('-');
        let seq = parts.next().and_then(|s| s.parse::<u32>().ok());
        let day = parts.next().and_then(|s| s.parse::<u32>().ok());
        if let (Some(seq), Some(day)) = (seq, day) {
            let idx = rtx.open_table(t::IDX_DAY)?;
            if let Some(v) = idx.get((day, seq))? {
                let key = v.value();
                let number_matches =
                    get_by_key(rtx, key)?.is_some_and(|o| o.order.number.eq_ignore_ascii_case(q));
                if number_matches {
                    keys.push(key);
                }
            }
        }
    } else if !q.is_empty() && q.len() <= 5 && q.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = q.parse().unwrap_or(0);
        let idx = rtx.open_table(t::IDX_DAY)?;
        if let Some(v) = idx.get((today, n))? {
            keys.push(v.value());
        }
    } else if q.starts_with('+') || (q.len() > 5 && q.bytes().all(|b| b.is_ascii_digit())) {
        let prefix = if q.starts_with('+') {
            q.to_owned()
        } else {
            format!("+{q}")
        };
        let idx = rtx.open_table(t::IDX_PHONE)?;
        for row in idx.range((prefix.as_str(), 0u128)..)? {
            let (k, ()) = (row?.0, ());
            let (phone, id) = k.value();
            if !phone.starts_with(prefix.as_str()) {
                break;
            }
            keys.push(id);
        }
    } else if !q.is_empty() {
        let needle = q.to_lowercase();
        let orders = rtx.open_table(t::ORDERS)?;
        let mut day = today;
        for _ in 0..7 {
            for k in day_keys(rtx, day)? {
                if let Some(v) = orders.get(k)? {
                    let o: StoredOrder = codec::decode(v.value())?;
                    if o.order
                        .customer_name
                        .as_ref()
                        .is_some_and(|n| n.to_lowercase().contains(&needle))
                    {
                        keys.push(k);
                    }
                }
            }
            day = crate::domain::date_of_day(day)
                .and_then(|d| d.yesterday().ok())
                .map_or(0, crate::domain::day_number);
        }
    }
    keys.sort_unstable_by(|a, b| b.cmp(a));
    keys.dedup();
    let data = load_keys(rtx, page_of(&keys, page, limit))?;
    Ok(Page {
        data,
        total: keys.len() as u64,
    })
}
