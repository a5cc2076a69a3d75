//! Changing an order: its lifecycle (transitions), edits of its lines, a station's bump and
//! allergy acknowledgement, and the recall of a mis-bump.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Moves an order to `to`, if the lifecycle allows it (409 listing the allowed ones otherwise).
pub fn transition(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    to: OrderStatus,
    note: Option<String>,
    actor: &str,
) -> TxResult<Order> {
    let loaded = load(tx, id)?;
    transition_loaded(tx, rules, loaded, to, note, actor)
}

/// [`transition`] of an order already read in this transaction.
pub(super) fn transition_loaded(
    tx: &mut Tx<'_>,
    rules: &Rules,
    (key, mut stored): (u128, StoredOrder),
    to: OrderStatus,
    note: Option<String>,
    actor: &str,
) -> TxResult<Order> {
    let now = tx.now_ms();
    let from = stored.order.status;
    if !from.can_move_to(to, stored.order.order_type) {
        let allowed: Vec<&str> = from
            .allowed_next(stored.order.order_type)
            .iter()
            .map(|s| s.as_str())
            .collect();
        return Err(AppError::new(
            ErrorKind::Conflict,
            "invalid_transition",
            format!(
                "a {} order cannot go from {} to {}",
                stored.order.order_type.as_str(),
                from.as_str(),
                to.as_str()
            ),
        )
        .with_details(json!({ "from": from.as_str(), "to": to.as_str(), "allowed": allowed }))
        .into());
    }
    if to == OrderStatus::Cancelled && note.as_ref().is_none_or(|n| n.trim().is_empty()) {
        return Err(AppError::invalid("note", "cancelling needs a reason in `note`").into());
    }
    if to == OrderStatus::Cancelled {
        crate::domain::checks::check_order_change(tx, rules, key, None)?;
    }
    // --- write ---
    let order = &mut stored.order;
    order.status = to;
    order.updated_at = now;
    stamp(order, to, Some(now));
    if to == OrderStatus::Cancelled {
        order.cancel_reason.clone_from(&note);
    }
    stored.history.push(StatusChange {
        from: Some(from),
        to,
        actor: actor.to_owned(),
        at: now,
        note: note.clone(),
        recall: false,
    });
    stored.last_event_seq = tx.emit(EventKind::StatusChanged {
        order_id: stored.order.id.clone(),
        number: stored.order.number.clone(),
        from,
        to,
        actor: actor.to_owned(),
        note,
        recall: false,
    })?;
    tx.idx_active.remove((from.code(), key))?;
    if to.is_final() {
        tx.idx_finished.insert((now, key), ())?;
    } else {
        tx.idx_active.insert((to.code(), key), ())?;
    }
    write_order(tx, key, &stored)?;
    if to == OrderStatus::Cancelled {
        crate::domain::checks::order_cancelled(tx, key)?;
    }
    let short = short_number(&stored.order);
    crate::domain::outbox::status_changed(tx, key, &stored.order.id, &short, to)?;
    Ok(stored.order)
}

/// The body of `PATCH /orders/{id}/items`: new quantities of existing lines (by index; 0
/// removes the line) and lines to add.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditLines {
    /// New quantities.
    #[serde(default)]
    pub set: Vec<SetQuantity>,
    /// New lines.
    #[serde(default)]
    pub add: Vec<NewLine>,
}

/// One new quantity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuantity {
    /// The line's index in the order's items.
    pub line: u32,
    /// The new quantity (0 removes the line).
    pub quantity: i64,
}

impl EditLines {
    /// Checks everything that needs no store.
    pub fn check_shape(&self, rules: &Rules) -> Result<(), AppError> {
        if self.set.is_empty() && self.add.is_empty() {
            return Err(AppError::invalid(
                "set",
                "nothing to change: give `set` or `add`",
            ));
        }
        if self.set.len() > rules.max_items || self.add.len() > rules.max_items {
            return Err(AppError::invalid(
                "set",
                format!("at most {} changes", rules.max_items),
            ));
        }
        for (i, s) in self.set.iter().enumerate() {
            if s.quantity < 0 || s.quantity > i64::from(rules.max_quantity) {
                return Err(AppError::invalid(
                    &format!("set[{i}].quantity"),
                    format!("must be 0 (remove) to {}", rules.max_quantity),
                ));
            }
        }
        check_lines(&self.add, rules, "add")
    }
}

/// The kitchen's name of a line: the item and, after a dash, its modifiers.
pub(super) fn delta_name(line: &OrderLine) -> String {
    if line.modifiers.is_empty() {
        return line.name.clone();
    }
    let mods: Vec<&str> = line.modifiers.iter().map(|m| m.name.as_str()).collect();
    // A plain hyphen: the small fonts of displays and printers often lack the long dash.
    format!("{} - {}", line.name, mods.join(", "))
}

/// Changes the lines of an order the kitchen has not finished (placed, accepted or
/// preparing): quantities, removals and additions, with stock, totals and one
/// `lines_edited` event carrying the per-station deltas and every line after the change.
pub fn edit_lines(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    req: &EditLines,
    actor: &str,
) -> TxResult<Order> {
    if let Some(key) = parse_id(id) {
        crate::domain::checks::check_editable(tx, key)?;
    }
    edit_lines_unchecked(tx, rules, id, req, actor)
}

/// [`edit_lines`] without asking the order's check (a void on the check uses it).
pub fn edit_lines_unchecked(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    req: &EditLines,
    actor: &str,
) -> TxResult<Order> {
    let now = tx.now_ms();
    let (key, mut stored) = load(tx, id)?;
    let status = stored.order.status;
    if !matches!(
        status,
        OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::Preparing
    ) {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "not_editable",
            format!(
                "a {} order can no longer change; place a new order",
                status.as_str()
            ),
        )
        .with_details(json!({ "status": status.as_str() }))
        .into());
    }
    let mut items = stored.order.items.clone();
    let mut changes: Vec<StationDelta> = Vec::new();
    // Net units per item, for the stock: positive takes, negative gives back.
    let mut need: BTreeMap<String, i64> = BTreeMap::new();
    // A line named twice takes its last quantity.
    let last_per_line = req
        .set
        .iter()
        .enumerate()
        .filter(|(i, s)| !req.set[i + 1..].iter().any(|o| o.line == s.line));
    for (i, s) in last_per_line {
        let Some(line) = items.get_mut(s.line as usize) else {
            // The order as it is now decides: 409.
            return Err(AppError::new(
                ErrorKind::Conflict,
                "no_such_line",
                format!(
                    "set[{i}].line: the order has {} lines",
                    stored.order.items.len()
                ),
            )
            .with_details(json!({ "field": format!("set[{i}].line") }))
            .into());
        };
        let new = s.quantity as u32;
        if new == line.quantity {
            continue;
        }
        *need.entry(line.item_id.clone()).or_default() += i64::from(new) - i64::from(line.quantity);
        changes.push(StationDelta {
            station: line.station.clone(),
            delta: LineDelta {
                item_id: line.item_id.clone(),
                name: delta_name(line),
                old_quantity: line.quantity,
                new_quantity: new,
            },
        });
        line.quantity = new;
        line.line_total = line
            .unit_price
            .checked_mul(i64::from(new))
            .ok_or_else(|| AppError::invalid(&format!("set[{i}]"), "total out of range"))?;
    }
    for line in price_lines(tx, rules, &req.add)? {
        *need.entry(line.item_id.clone()).or_default() += i64::from(line.quantity);
        changes.push(StationDelta {
            station: line.station.clone(),
            delta: LineDelta {
                item_id: line.item_id.clone(),
                name: delta_name(&line),
                old_quantity: 0,
                new_quantity: line.quantity,
            },
        });
        items.push(line);
    }
    items.retain(|l| l.quantity > 0);
    if items.is_empty() {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "last_line",
            "an order keeps at least one line; cancel it instead",
        )
        .with_details(json!({ "field": "set" }))
        .into());
    }
    if items.len() > rules.max_items {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "too_many_lines",
            format!("an order has at most {} lines", rules.max_items),
        )
        .with_details(json!({ "field": "add" }))
        .into());
    }
    let mut stock_after = Vec::new();
    for (item_id, &delta) in &need {
        let Some(level) = tx.stock.get(item_id.as_str())?.map(|v| v.value()) else {
            continue;
        };
        let after = i64::from(level) - delta;
        if after < 0 {
            return Err(short_of_stock(item_id, level, delta).into());
        }
        stock_after.push((
            item_id.clone(),
            level,
            u32::try_from(after).unwrap_or(u32::MAX),
        ));
    }
    let subtotal = items
        .iter()
        .try_fold(0i64, |acc, l| acc.checked_add(l.line_total))
        .ok_or_else(|| AppError::invalid("items", "order total out of range"))?;
    let (tax, total) = tax_and_total(subtotal, rules);
    crate::domain::checks::check_order_change(tx, rules, key, Some(&items))?;
    // --- write ---
    // A station whose lines changed has new work: its bump no longer stands.
    stored
        .stations_done
        .retain(|m| !changes.iter().any(|c| c.station == m.station));
    let order = &mut stored.order;
    order.items = items;
    order.subtotal = subtotal;
    order.tax = tax;
    order.total = total;
    order.updated_at = now;
    stored.last_event_seq = tx.emit(EventKind::LinesEdited {
        order_id: order.id.clone(),
        number: order.number.clone(),
        changes,
        lines: order.items.clone(),
        subtotal,
        tax,
        total,
        actor: actor.to_owned(),
    })?;
    for (item_id, before, after) in stock_after {
        tx.stock.insert(item_id.as_str(), after)?;
        stock_events(tx, &item_id, before, after)?;
    }
    write_order(tx, key, &stored)?;
    crate::domain::checks::order_edited(tx, rules, &stored.order, key)?;
    Ok(stored.order)
}

/// The short number the kitchen calls out and customers are told: the day's number, `NNN`.
pub fn short_number(order: &Order) -> String {
    format!("{:03}", order.daily_seq)
}

/// Whether an order in this status is still work for the kitchen (it is on the station
/// boards, and a bump bar moves it on).
pub fn in_kitchen(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::Preparing
    )
}

/// A station's bump: the station's part of the order is done (a `StationDone` event), so its
/// board drops the ticket while other stations keep theirs. When every station with lines on
/// the order is done, the order moves on to `ready`; before that, a first bump moves a placed
/// or accepted order to `preparing`. With `recall`, the station takes its bump back, within
/// the recall window, and an order that became ready with it goes back to `preparing`. Read and
/// decided in the same transaction as the change, so two quick presses never bump twice.
/// Refused when the order has nothing for the station, has left the kitchen, or the station
/// already bumped it.
pub fn bump(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    station: &str,
    recall: bool,
    actor: &str,
) -> TxResult<Order> {
    let (key, mut stored) = load(tx, id)?;
    let stations: std::collections::BTreeSet<String> = stored
        .order
        .items
        .iter()
        .map(|l| l.station.clone())
        .collect();
    if !stations.contains(station) {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "not_at_station",
            format!("the order has nothing for the {station} station"),
        )
        .into());
    }
    let status = stored.order.status;
    let now = tx.now_ms();
    if recall {
        let Some(pos) = stored
            .stations_done
            .iter()
            .position(|m| m.station == station)
            .filter(|_| in_kitchen(status) || status == OrderStatus::Ready)
        else {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "nothing_to_recall",
                format!("the {station} station has no bump of this order to take back"),
            )
            .into());
        };
        if now.saturating_sub(stored.stations_done[pos].at) > rules.recall_window_ms {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "recall_window_passed",
                format!(
                    "the bump is older than the {} s recall window",
                    rules.recall_window_ms / 1000
                ),
            )
            .into());
        }
        stored.stations_done.remove(pos);
        mark_station(tx, key, &mut stored, station, false, actor)?;
        if status == OrderStatus::Ready {
            let loaded = load(tx, id)?;
            return recall_loaded(tx, rules, loaded, actor);
        }
        return Ok(stored.order);
    }
    if !in_kitchen(status) {
        return Err(left_kitchen().into());
    }
    if stored.done_at(station) {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "already_done",
            format!("the {station} station has already bumped this order"),
        )
        .into());
    }
    if stored
        .allergy
        .as_ref()
        .is_some_and(|a| !a.acked_at(station))
    {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "allergy_unacknowledged",
            "the order has an allergy note: acknowledge it before the first bump",
        )
        .into());
    }
    stored.stations_done.push(StationMark {
        station: station.to_owned(),
        at: now,
        by: actor.to_owned(),
    });
    let all_done = stations.iter().all(|s| stored.done_at(s));
    mark_station(tx, key, &mut stored, station, true, actor)?;
    let target = if all_done {
        OrderStatus::Ready
    } else {
        OrderStatus::Preparing
    };
    let mut order = stored.order;
    while in_kitchen(order.status) && order.status != target {
        let Some(next) = order
            .status
            .allowed_next(order.order_type)
            .iter()
            .copied()
            .find(|s| *s != OrderStatus::Cancelled)
        else {
            break;
        };
        let loaded = load(tx, id)?;
        order = transition_loaded(tx, rules, loaded, next, None, actor)?;
    }
    Ok(order)
}

/// What a station asks of its ticket: a bump, a recall of its bump, or an acknowledgement
/// of the order's allergy note (a bump bar's payload and the kitchen page's buttons alike).
pub fn station_act(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    station: &str,
    action: BumpAction,
    actor: &str,
) -> TxResult<Order> {
    match action {
        BumpAction::Bump => bump(tx, rules, id, station, false, actor),
        BumpAction::Recall => bump(tx, rules, id, station, true, actor),
        BumpAction::AckAllergy => ack_allergy(tx, id, station, actor),
    }
}

/// A station acknowledges the order's allergy note: its cook has read it, and may bump.
/// Refused when the order has no note, nothing for the station, has left the kitchen, or the
/// station already acknowledged it.
pub fn ack_allergy(tx: &mut Tx<'_>, id: &str, station: &str, actor: &str) -> TxResult<Order> {
    let (key, mut stored) = load(tx, id)?;
    if !stored.order.items.iter().any(|l| l.station == station) {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "not_at_station",
            format!("the order has nothing for the {station} station"),
        )
        .into());
    }
    if !in_kitchen(stored.order.status) {
        return Err(left_kitchen().into());
    }
    let now = tx.now_ms();
    let Some(allergy) = stored.allergy.as_mut() else {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "no_allergy",
            "the order has no allergy note",
        )
        .into());
    };
    if allergy.acked_at(station) {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "already_acknowledged",
            format!("the {station} station has already acknowledged the allergy note"),
        )
        .into());
    }
    allergy.acked.push(StationMark {
        station: station.to_owned(),
        at: now,
        by: actor.to_owned(),
    });
    stored.last_event_seq = tx.emit(EventKind::AllergyAcked {
        order_id: stored.order.id.clone(),
        number: stored.order.number.clone(),
        station: station.to_owned(),
        actor: actor.to_owned(),
    })?;
    write_order(tx, key, &stored)?;
    Ok(stored.order)
}

/// Records a station's bump (or its recall) as an event and writes the order.
pub(super) fn mark_station(
    tx: &mut Tx<'_>,
    key: u128,
    stored: &mut StoredOrder,
    station: &str,
    done: bool,
    actor: &str,
) -> TxResult<()> {
    stored.last_event_seq = tx.emit(EventKind::StationDone {
        order_id: stored.order.id.clone(),
        number: stored.order.number.clone(),
        station: station.to_owned(),
        done,
        actor: actor.to_owned(),
    })?;
    write_order(tx, key, stored)?;
    Ok(())
}

/// Undoes the last transition, within the recall window. A cancellation cannot be recalled.
pub fn recall(tx: &mut Tx<'_>, rules: &Rules, id: &str, actor: &str) -> TxResult<Order> {
    let loaded = load(tx, id)?;
    recall_loaded(tx, rules, loaded, actor)
}

/// [`recall`] of an order already read in this transaction.
pub(super) fn recall_loaded(
    tx: &mut Tx<'_>,
    rules: &Rules,
    (key, mut stored): (u128, StoredOrder),
    actor: &str,
) -> TxResult<Order> {
    let now = tx.now_ms();
    let Some(last) = stored.history.last().cloned() else {
        return Err(AppError::not_found("order").into());
    };
    let prev = match last.from {
        Some(prev) if !last.recall && last.to != OrderStatus::Cancelled => prev,
        _ => {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "nothing_to_recall",
                "only the last status change can be recalled, once, and never a cancellation",
            )
            .into());
        }
    };
    if now.saturating_sub(last.at) > rules.recall_window_ms {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "recall_window_passed",
            format!(
                "the last change is older than the {} s recall window",
                rules.recall_window_ms / 1000
            ),
        )
        .into());
    }
    // --- write ---
    let cur = last.to;
    let finished_at = stored.order.finished_at;
    let order = &mut stored.order;
    order.status = prev;
    order.updated_at = now;
    stamp(order, cur, None);
    stored.history.push(StatusChange {
        from: Some(cur),
        to: prev,
        actor: actor.to_owned(),
        at: now,
        note: None,
        recall: true,
    });
    stored.last_event_seq = tx.emit(EventKind::StatusChanged {
        order_id: stored.order.id.clone(),
        number: stored.order.number.clone(),
        from: cur,
        to: prev,
        actor: actor.to_owned(),
        note: None,
        recall: true,
    })?;
    if cur.is_final() {
        if let Some(at) = finished_at {
            tx.idx_finished.remove((at, key))?;
        }
    } else {
        tx.idx_active.remove((cur.code(), key))?;
    }
    tx.idx_active.insert((prev.code(), key), ())?;
    write_order(tx, key, &stored)?;
    Ok(stored.order)
}

/// A station acted on an order that is no longer in the kitchen.
fn left_kitchen() -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        "left_kitchen",
        "the order has left the kitchen",
    )
}
