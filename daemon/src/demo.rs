//! The demo restaurant: a small menu (English and Albanian names, two stations, modifiers and
//! tracked stock) and a few tables, seeded on first start so `orderd` runs out of the box.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use crate::domain::menu::Menu;
use crate::domain::tables::{Table, new_token};
use crate::store::{Store, StoreError, codec, tables as t};

/// The demo menu, shipped as `config/demo-menu.json`.
pub const DEMO_MENU: &str = include_str!("../../config/demo-menu.json");

/// Parses the demo menu.
pub fn demo_menu() -> Menu {
    serde_json::from_str(DEMO_MENU).expect("config/demo-menu.json is a valid menu")
}

/// Seeds the demo menu and tables if the store has no menu yet. Returns whether it did.
pub fn seed(store: &Store, now_ms: u64) -> Result<bool, StoreError> {
    let wtx = store.db().begin_write()?;
    {
        let mut menu_t = wtx.open_table(t::MENU)?;
        if menu_t.get("menu")?.is_some() {
            return Ok(false);
        }
        let menu = demo_menu();
        let mut stock = wtx.open_table(t::STOCK)?;
        for item in menu.items() {
            if let Some(n) = item.stock {
                stock.insert(item.id.as_str(), n)?;
            }
        }
        menu_t.insert("menu", codec::encode(&menu)?.as_slice())?;
        let mut tables = wtx.open_table(t::TABLES)?;
        if tables.is_empty()? {
            for (i, zone) in ["inside", "inside", "inside", "inside", "terrace", "terrace"]
                .iter()
                .enumerate()
            {
                let table = Table {
                    id: format!("t{}", i + 1),
                    label: format!("T{}", i + 1),
                    zone: (*zone).to_owned(),
                    qr_token: new_token(),
                    created_at: now_ms,
                };
                tables.insert(table.id.as_str(), codec::encode(&table)?.as_slice())?;
            }
        }
    }
    wtx.commit()?;
    Ok(true)
}

/// The stored menu (empty when none was uploaded).
pub fn load_menu(rtx: &ReadTransaction) -> Result<Menu, StoreError> {
    let menu_t = rtx.open_table(t::MENU)?;
    Ok(match menu_t.get("menu")? {
        Some(v) => codec::decode(v.value())?,
        None => Menu::default(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_menu_is_valid() {
        let m = super::demo_menu();
        m.validate(500).unwrap();
        let stations: std::collections::BTreeSet<_> =
            m.items().map(|i| i.station.as_str()).collect();
        assert!(stations.len() >= 2);
        assert!(m.items().all(|i| i.name.contains_key("sq")));
        assert!(m.items().any(|i| !i.modifier_groups.is_empty()));
    }
}
