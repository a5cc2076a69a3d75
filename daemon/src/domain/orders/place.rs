//! Placing an order: the table by its code, prices and modifiers from the menu, tax, stock,
//! numbers and idempotency, all checked server-side and written in one transaction.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Finds a table by QR token in constant time per comparison.
pub fn table_by_token(tx: &Tx<'_>, token: &str) -> TxResult<Option<Table>> {
    let mut tables = Vec::new();
    for row in tx.tables.iter()? {
        tables.push(codec::decode::<Table>(row?.1.value())?);
    }
    Ok(crate::domain::tables::matching(tables, token))
}

pub(super) fn price_lines(
    tx: &Tx<'_>,
    rules: &Rules,
    items: &[NewLine],
) -> TxResult<Vec<OrderLine>> {
    let menu = crate::domain::menu::arc_of(tx);
    let stock = &tx.stock;
    let lang = rules.default_language.as_str();
    let mut lines = Vec::with_capacity(items.len());
    for (i, line) in items.iter().enumerate() {
        let Some(item) = menu.item(&line.item_id) else {
            // The menu is state that changes under a client's feet: 409, not a malformed body.
            return Err(AppError::new(
                ErrorKind::Conflict,
                "unknown_item",
                format!("items[{i}]: no menu item {:?}", line.item_id),
            )
            .with_details(json!({ "line": i, "item_id": line.item_id }))
            .into());
        };
        let sold_out = stock.get(item.id.as_str())?.is_some_and(|v| v.value() == 0);
        if !item.available || sold_out {
            return Err(AppError::new(
                ErrorKind::Conflict,
                if sold_out {
                    "sold_out"
                } else {
                    "item_unavailable"
                },
                format!("items[{i}]: {:?} is not available now", item.id),
            )
            .with_details(json!({ "line": i, "item_id": item.id }))
            .into());
        }
        let modifiers = select_modifiers(item, &line.modifiers, lang).map_err(|msg| {
            AppError::new(
                ErrorKind::Conflict,
                "invalid_modifiers",
                format!("items[{i}]: {msg}"),
            )
            .with_details(json!({ "line": i, "item_id": item.id }))
        })?;
        let unit_price = modifiers
            .iter()
            .try_fold(item.price, |acc, m| acc.checked_add(m.price_delta))
            .filter(|p| *p >= 0)
            .ok_or_else(|| AppError::invalid(&format!("items[{i}]"), "price out of range"))?;
        let quantity = line.quantity as u32;
        let line_total = unit_price
            .checked_mul(i64::from(quantity))
            .ok_or_else(|| AppError::invalid(&format!("items[{i}]"), "total out of range"))?;
        lines.push(OrderLine {
            item_id: item.id.clone(),
            name: crate::domain::menu::localize(&item.name, lang, lang).to_owned(),
            quantity,
            unit_price,
            line_total,
            modifiers,
            note: line.note.clone(),
            station: item.station.clone(),
        });
    }
    Ok(lines)
}

pub(super) fn select_modifiers(
    item: &Item,
    chosen: &[String],
    lang: &str,
) -> Result<Vec<SelectedModifier>, String> {
    let mut out = Vec::with_capacity(chosen.len());
    let mut per_group: BTreeMap<&str, u32> = BTreeMap::new();
    for (k, id) in chosen.iter().enumerate() {
        if chosen[..k].contains(id) {
            return Err(format!("option {id:?} chosen twice"));
        }
        let Some((group, option)) = item.option(id) else {
            return Err(format!("{:?} has no option {id:?}", item.id));
        };
        *per_group.entry(group.id.as_str()).or_default() += 1;
        out.push(SelectedModifier {
            group_id: group.id.clone(),
            option_id: option.id.clone(),
            name: crate::domain::menu::localize(&option.name, lang, lang).to_owned(),
            price_delta: option.price_delta,
        });
    }
    for group in &item.modifier_groups {
        let n = per_group.get(group.id.as_str()).copied().unwrap_or(0);
        if n < group.min || n > group.max {
            return Err(format!(
                "group {:?} needs {} to {} choices, got {n}",
                group.id, group.min, group.max
            ));
        }
    }
    Ok(out)
}

/// Tax and total from a subtotal, rounding half up.
pub fn tax_and_total(subtotal: i64, rules: &Rules) -> (i64, i64) {
    let rate = i128::from(rules.tax_rate_bp);
    let sub = i128::from(subtotal);
    if rules.prices_include_tax {
        let denom = 10_000 + rate;
        let tax = (sub * rate * 2 + denom) / (denom * 2);
        (tax as i64, subtotal)
    } else {
        let tax = (sub * rate * 2 + 10_000) / 20_000;
        (tax as i64, subtotal + tax as i64)
    }
}

/// 409 `sold_out` / `insufficient_stock`: `requested` more of an item than the `level` left.
pub(super) fn short_of_stock(item_id: &str, level: u32, requested: i64) -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        if level == 0 {
            "sold_out"
        } else {
            "insufficient_stock"
        },
        format!("only {level} of {item_id:?} left"),
    )
    .with_details(json!({ "item_id": item_id, "available": level, "requested": requested }))
}

/// Places an order inside the batch: checks everything, then writes the order, its indexes,
/// the stock, the number counter, the idempotency record and the events. `idem` is the
/// `Idempotency-Key` and the caller's scope it belongs to.
pub fn place(
    tx: &mut Tx<'_>,
    rules: &Rules,
    req: &NewOrder,
    actor: &Actor,
    idem: Option<(&str, &str)>,
) -> TxResult<Placed> {
    let now = tx.now_ms();
    // --- check ---
    let idem_key = idem.map(|(key, _)| key);
    let body_hash = idem.map(|(_, scope)| req.body_hash(scope));
    if let (Some(key), Some(hash)) = (idem_key, body_hash)
        && let Some(v) = tx.idempotency.get(key)?
    {
        {
            let rec: IdemRecord = codec::decode(v.value())?;
            if rec.expires_at > now {
                if rec.body_hash != hash {
                    // Another body, or another caller: the same answer either way, which says
                    // nothing about the order the key made.
                    return Err(AppError::new(
                        ErrorKind::Conflict,
                        "idempotency_key_reused",
                        "this Idempotency-Key is already in use; send a new key",
                    )
                    .into());
                }
                // An order pruned by retention frees its key: then this is a new order.
                if let Some(stored) = get_in_tx(tx, rec.order_id)? {
                    return Ok(Placed {
                        order: stored.order,
                        replayed: true,
                        allergy: stored.allergy,
                    });
                }
            }
        }
    }
    let table = match (&req.table_token, &req.table_id) {
        (Some(token), _) => Some(table_by_token(tx, token)?.ok_or_else(|| {
            AppError::new(
                ErrorKind::Unauthorized,
                "invalid_table_token",
                "this table's QR code is no longer valid; scan the code on the table again",
            )
        })?),
        (None, Some(id)) => Some(match tx.tables.get(id.as_str())? {
            Some(v) => codec::decode::<Table>(v.value())?,
            None => {
                return Err(AppError::new(
                    ErrorKind::NotFound,
                    "table_not_found",
                    format!("no table {id:?}"),
                )
                .with_details(json!({ "field": "table_id" }))
                .into());
            }
        }),
        (None, None) => None,
    };
    if let Some((_, Some(bound))) = &actor.verified
        && table.as_ref().is_none_or(|t| &t.id != bound)
    {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "token_table_mismatch",
            "this verification belongs to another table; verify again at this table",
        )
        .into());
    }
    let lines = price_lines(tx, rules, &req.items)?;
    let mut need: BTreeMap<&str, u32> = BTreeMap::new();
    for l in &lines {
        *need.entry(l.item_id.as_str()).or_default() += l.quantity;
    }
    let mut stock_after = Vec::new();
    for (&item_id, &qty) in &need {
        if let Some(level) = tx.stock.get(item_id)?.map(|v| v.value()) {
            if level < qty {
                return Err(short_of_stock(item_id, level, i64::from(qty)).into());
            }
            stock_after.push((item_id.to_owned(), level, level - qty));
        }
    }
    let subtotal = lines
        .iter()
        .try_fold(0i64, |acc, l| acc.checked_add(l.line_total))
        .ok_or_else(|| AppError::invalid("items", "order total out of range"))?;
    let (tax, total) = tax_and_total(subtotal, rules);
    // The day and its counter come from the last key of the day index, read and extended in
    // this same transaction, so concurrent orders never share a number. The clock never goes
    // back (`clock::GuardedClock`), and the day never precedes the last day used either (say,
    // after the day-start hour or time zone was changed): numbers stay in order.
    let (last_day, last_seq) = tx.idx_day.last()?.map_or((0, 0), |(k, _)| k.value());
    let today = rules.business_day(now);
    let (day, last) = if last_day >= today {
        (last_day, last_seq)
    } else {
        (today, 0)
    };
    let daily_seq_u32 = last
        .checked_add(1)
        .ok_or_else(|| AppError::new(ErrorKind::Conflict, "day_full", "order counter exhausted"))?;

    // Ids grow strictly in commit order (time-ordered, random low bits, bumped past the last
    // one if the clock stands still or went back), so the orders tree only ever appends and
    // its pages stay full.
    let last_id = tx.orders.last()?.map_or(0, |(k, _)| k.value());
    let candidate = new_id(now);
    let id = if candidate > last_id {
        candidate
    } else {
        last_id + 1 + u128::from(rand::random::<u32>())
    };

    // --- write ---
    let order = Order {
        id: id_text(id),
        number: rules.order_number(day, daily_seq_u32),
        business_day: day,
        daily_seq: daily_seq_u32,
        order_type: req.order_type,
        source: actor.source,
        status: OrderStatus::Placed,
        table_id: table.as_ref().map(|t| t.id.clone()),
        table_label: table.as_ref().map(|t| t.label.clone()),
        address: req.address.clone(),
        customer_name: req.customer_name.clone(),
        customer_phone: match &actor.verified {
            Some((contact, _)) => Some(contact.phone.clone()),
            None => req.customer_phone.clone(),
        },
        note: req.note.clone(),
        items: lines,
        subtotal,
        tax,
        total,
        currency: rules.currency.clone(),
        created_at: now,
        updated_at: now,
        accepted_at: None,
        preparing_at: None,
        ready_at: None,
        finished_at: None,
        out_for_delivery_at: None,
        cancel_reason: None,
    };
    let mut seq = tx.emit(EventKind::OrderPlaced(Box::new(order.clone())))?;
    // Right after its order, in the same transaction: the kitchen hub reads both in one burst.
    let allergy = req
        .allergy
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|note| Allergy {
            note: note.to_owned(),
            by: actor.name.clone(),
            acked: Vec::new(),
        });
    if let Some(a) = &allergy {
        seq = tx.emit(EventKind::AllergyNoted {
            order_id: order.id.clone(),
            number: order.number.clone(),
            note: a.note.clone(),
            actor: actor.name.clone(),
        })?;
    }
    for (item_id, before, after) in stock_after {
        tx.stock.insert(item_id.as_str(), after)?;
        stock_events(tx, &item_id, before, after)?;
    }
    let stored = StoredOrder {
        order,
        history: vec![StatusChange {
            from: None,
            to: OrderStatus::Placed,
            actor: actor.name.clone(),
            at: now,
            note: None,
            recall: false,
        }],
        last_event_seq: seq,
        idem_key: idem_key.map(str::to_owned),
        stations_done: Vec::new(),
        allergy,
    };
    write_order(tx, id, &stored)?;
    tx.idx_active.insert((OrderStatus::Placed.code(), id), ())?;
    tx.idx_day.insert((day, daily_seq_u32), id)?;
    if let Some(phone) = &stored.order.customer_phone {
        tx.idx_phone.insert((phone.as_str(), id), ())?;
    }
    if let Some((contact, _)) = &actor.verified {
        crate::domain::outbox::set_contact(tx, id, contact)?;
    }
    crate::domain::checks::join_placed(tx, rules, &stored.order, id)?;
    if let (Some(key), Some(body_hash)) = (idem_key, body_hash) {
        let rec = IdemRecord {
            body_hash,
            order_id: id,
            expires_at: now + rules.idempotency_ttl_ms,
        };
        tx.idempotency
            .insert(key, codec::encode(&rec)?.as_slice())?;
    }
    Ok(Placed {
        order: stored.order,
        replayed: false,
        allergy: stored.allergy,
    })
}

/// Emits the stock events for a level change of a tracked item.
pub fn stock_events(tx: &mut Tx<'_>, item_id: &str, before: u32, after: u32) -> TxResult<()> {
    if after == 0 && before > 0 {
        tx.emit(EventKind::SoldOut {
            item_id: item_id.to_owned(),
        })?;
        tx.emit(EventKind::AvailabilityChanged {
            item_id: item_id.to_owned(),
            available: false,
        })?;
    } else if before == 0 && after > 0 {
        let on = crate::domain::menu::of(tx)
            .item(item_id)
            .is_some_and(|i| i.available);
        if on {
            tx.emit(EventKind::AvailabilityChanged {
                item_id: item_id.to_owned(),
                available: true,
            })?;
        }
    }
    if after > 0 {
        let threshold = crate::domain::menu::of(tx)
            .item(item_id)
            .and_then(|i| i.low_stock_threshold);
        if let Some(th) = threshold
            && after <= th
            && before > th
        {
            tx.emit(EventKind::StockLow {
                item_id: item_id.to_owned(),
                remaining: after,
            })?;
        }
    }
    Ok(())
}
