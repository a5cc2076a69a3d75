//! The menu as a spreadsheet: one CSV row per item, exported and imported exactly (an export
//! imported again is the same menu, and exports the same bytes), with every problem named by
//! its row and column.
//!
//! Columns (the header names them; any order):
//! - `category_id`, `category_name:LANG` (one per language): the item's category. Categories
//!   come in the order of their first row; a category's names are read from its first row.
//! - `id`, `name:LANG`, `description:LANG`: the item.
//! - `price`: in the currency's units, with its minor digits (`8.50`; `1200` for the lek).
//! - `station`, `allergens` (codes separated by `;`), `available` (`yes`/`no`), `stock` and
//!   `low_stock_threshold` (blank: not tracked).
//! - `modifier_groups`: the item's groups as in `PUT /api/v1/menu` (JSON, prices in minor
//!   units); blank for none.

use std::collections::{BTreeMap, BTreeSet};

use super::menu::{Category, Item, Localized, Menu, ModifierGroup};

/// Fixed columns, in export order around the per-language ones.
const ID_COLUMNS: [&str; 1] = ["category_id"];
const ITEM_COLUMNS: [&str; 7] = [
    "price",
    "station",
    "allergens",
    "available",
    "stock",
    "low_stock_threshold",
    "modifier_groups",
];

/// Most rows an import takes (the menu's own limits are lower).
pub const MAX_ROWS: usize = 5_000;

/// The menu as CSV (UTF-8 with a byte-order mark, so spreadsheets read ë and ç right).
pub fn to_csv(menu: &Menu, minor_digits: u8) -> String {
    let mut langs: BTreeSet<&str> = BTreeSet::new();
    let mut desc_langs: BTreeSet<&str> = BTreeSet::new();
    let mut cat_langs: BTreeSet<&str> = BTreeSet::new();
    for c in &menu.categories {
        cat_langs.extend(c.name.keys().map(String::as_str));
        for i in &c.items {
            langs.extend(i.name.keys().map(String::as_str));
            desc_langs.extend(i.description.keys().map(String::as_str));
        }
    }
    let order = |set: BTreeSet<&str>| -> Vec<String> {
        // English first (it is required), then the others alphabetically.
        let mut v: Vec<String> = set.into_iter().map(str::to_owned).collect();
        v.sort_by_key(|l| (l != "en", l.clone()));
        v
    };
    let (langs, desc_langs, cat_langs) = (order(langs), order(desc_langs), order(cat_langs));
    let mut header: Vec<String> = ID_COLUMNS.iter().map(|s| (*s).to_owned()).collect();
    header.extend(cat_langs.iter().map(|l| format!("category_name:{l}")));
    header.push("id".into());
    header.extend(langs.iter().map(|l| format!("name:{l}")));
    header.extend(desc_langs.iter().map(|l| format!("description:{l}")));
    header.extend(ITEM_COLUMNS.iter().map(|s| (*s).to_owned()));
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(&header);
    let text = |m: &Localized, l: &str| m.get(l).cloned().unwrap_or_default();
    for c in &menu.categories {
        for i in &c.items {
            let mut row: Vec<String> = vec![c.id.clone()];
            row.extend(cat_langs.iter().map(|l| text(&c.name, l)));
            row.push(i.id.clone());
            row.extend(langs.iter().map(|l| text(&i.name, l)));
            row.extend(desc_langs.iter().map(|l| text(&i.description, l)));
            row.push(format_price(i.price, minor_digits));
            row.push(i.station.clone());
            row.push(i.allergens.join(";"));
            row.push(if i.available { "yes" } else { "no" }.into());
            row.push(i.stock.map(|n| n.to_string()).unwrap_or_default());
            row.push(
                i.low_stock_threshold
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            );
            row.push(if i.modifier_groups.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&i.modifier_groups).unwrap_or_default()
            });
            let _ = w.write_record(&row);
        }
    }
    let body = w.into_inner().unwrap_or_default();
    let mut out = String::from("\u{feff}");
    out.push_str(&String::from_utf8_lossy(&body));
    out
}

/// An amount in minor units as the currency writes it: `850` → `8.50` with 2 digits (the
/// printed bill's form).
pub fn format_price(minor: i64, digits: u8) -> String {
    orderd_plugins::escpos::money(minor, digits)
}

/// An amount as written (`8.50`, `8,5`, `8`) in minor units; `None` if it is not one, or has
/// more decimals than the currency.
pub fn parse_price(text: &str, digits: u8) -> Option<i64> {
    let t = text.trim();
    let (whole, frac) = match t.split_once(['.', ',']) {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    if whole.is_empty()
        || whole.len() > 12
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > usize::from(digits)
        || (t.len() > whole.len() && frac.is_empty())
    {
        return None;
    }
    let scale = 10i64.pow(u32::from(digits));
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..usize::from(digits) {
        f *= 10;
    }
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(f)
}

/// Where a problem is, for the person who fixes the spreadsheet.
fn at(row: usize, column: &str) -> String {
    format!("row {row}, {column}")
}

/// Reads a menu from CSV. Every problem is listed, each with its row (the header is row 1)
/// and column; the menu's own rules ([`Menu::validate`]) are checked afterwards by the caller,
/// whose paths [`row_of_path`] turns into rows.
pub fn from_csv(text: &str, minor_digits: u8) -> Result<(Menu, Vec<usize>), Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match r.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_owned()).collect(),
        Err(e) => return Err(vec![format!("row 1: {e}")]),
    };
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for h in &header {
        let known = ID_COLUMNS.contains(&h.as_str())
            || ITEM_COLUMNS.contains(&h.as_str())
            || h == "id"
            || ["category_name:", "name:", "description:"].iter().any(|p| {
                h.strip_prefix(p)
                    .is_some_and(|l| crate::config::is_slug(l, 8))
            });
        if !known {
            problems.push(format!(
                "row 1, {h:?}: unknown column (known: category_id, category_name:LANG, id, name:LANG, description:LANG, {})",
                ITEM_COLUMNS.join(", ")
            ));
        } else if !seen.insert(h.as_str()) {
            problems.push(format!("row 1, {h}: the column appears twice"));
        }
    }
    for need in ["category_id", "id", "name:en", "price", "station"] {
        if !header.iter().any(|h| h == need) {
            problems.push(format!("row 1: the column {need} is missing"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let col = |name: &str| header.iter().position(|h| h == name);
    let langs = |prefix: &str| -> Vec<(usize, String)> {
        header
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.strip_prefix(prefix).map(|l| (i, l.to_owned())))
            .collect()
    };
    let (cat_names, names, descs) = (
        langs("category_name:"),
        langs("name:"),
        langs("description:"),
    );
    let mut menu = Menu::default();
    // The row of each item, by (category, item) position, for the menu's own problems.
    let mut rows_of: Vec<usize> = Vec::new();
    let mut cat_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut item_rows: Vec<Vec<usize>> = Vec::new();
    for (n, record) in r.records().enumerate() {
        let row = n + 2;
        if n >= MAX_ROWS {
            problems.push(format!("row {row}: at most {MAX_ROWS} rows"));
            break;
        }
        let rec = match record {
            Ok(rec) => rec,
            Err(e) => {
                problems.push(format!("row {row}: {e}"));
                continue;
            }
        };
        let cell = |name: &str| col(name).and_then(|i| rec.get(i)).unwrap_or("").trim();
        let localized = |cols: &[(usize, String)]| -> Localized {
            cols.iter()
                .filter_map(|(i, l)| {
                    let v = rec.get(*i).unwrap_or("").trim();
                    (!v.is_empty()).then(|| (l.clone(), v.to_owned()))
                })
                .collect()
        };
        let before = problems.len();
        let price = parse_price(cell("price"), minor_digits);
        if price.is_none() {
            problems.push(format!(
                "{}: {:?} is not an amount with at most {minor_digits} decimals, e.g. {}",
                at(row, "price"),
                cell("price"),
                format_price(850, minor_digits)
            ));
        }
        let available = match cell("available").to_ascii_lowercase().as_str() {
            "" | "yes" | "true" | "1" | "po" => true,
            "no" | "false" | "0" | "jo" => false,
            other => {
                problems.push(format!(
                    "{}: {other:?} is not yes or no",
                    at(row, "available")
                ));
                true
            }
        };
        let mut number = |name: &str| -> Option<u32> {
            let v = cell(name);
            if v.is_empty() {
                return None;
            }
            let n = v.parse::<u32>().ok();
            if n.is_none() {
                problems.push(format!("{}: {v:?} is not a whole number", at(row, name)));
            }
            n
        };
        let stock = number("stock");
        let low = number("low_stock_threshold");
        let groups: Vec<ModifierGroup> = match cell("modifier_groups") {
            "" => Vec::new(),
            json => serde_json::from_str(json).unwrap_or_else(|e| {
                problems.push(format!(
                    "{}: not a list of groups as in PUT /api/v1/menu ({e})",
                    at(row, "modifier_groups")
                ));
                Vec::new()
            }),
        };
        if problems.len() > before {
            continue;
        }
        let item = Item {
            id: cell("id").to_owned(),
            name: localized(&names),
            description: localized(&descs),
            price: price.unwrap_or_default(),
            station: cell("station").to_owned(),
            allergens: cell("allergens")
                .split(';')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
            modifier_groups: groups,
            available,
            stock,
            low_stock_threshold: low,
        };
        let cat_id = cell("category_id").to_owned();
        let cat_name = localized(&cat_names);
        let ci = if let Some(&ci) = cat_index.get(&cat_id) {
            let c: &Category = &menu.categories[ci];
            if !cat_name.is_empty() && cat_name != c.name {
                problems.push(format!(
                    "{}: differs from the category's first row (row {})",
                    at(row, "category_name"),
                    item_rows[ci][0]
                ));
                continue;
            }
            ci
        } else {
            cat_index.insert(cat_id.clone(), menu.categories.len());
            menu.categories.push(Category {
                id: cat_id,
                name: cat_name,
                items: Vec::new(),
            });
            item_rows.push(Vec::new());
            menu.categories.len() - 1
        };
        menu.categories[ci].items.push(item);
        item_rows[ci].push(row);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Rows in (category, item) order, as `row_of_path` reads them.
    for rows in &item_rows {
        rows_of.extend(rows);
    }
    Ok((menu, rows_of))
}

/// A problem of [`Menu::validate`] (`categories[1].items[2].price: …`) with the row of its item
/// instead of its path, given the rows [`from_csv`] returned.
pub fn row_of_path(problem: &str, menu: &Menu, rows: &[usize]) -> String {
    let parse = |s: &str, key: &str| -> Option<(usize, usize)> {
        let rest = s.strip_prefix(key)?;
        let end = rest.find(']')?;
        Some((rest[..end].parse().ok()?, key.len() + end + 1))
    };
    let Some((ci, used)) = parse(problem, "categories[") else {
        return problem.to_owned();
    };
    let rest = &problem[used..];
    if let Some((ii, used2)) = parse(rest, ".items[") {
        let before: usize = menu.categories.iter().take(ci).map(|c| c.items.len()).sum();
        if let Some(row) = rows.get(before + ii) {
            let what = rest[used2..].trim_start_matches('.');
            return format!("row {row}, {what}");
        }
    }
    // A category's own problem: its first row.
    let before: usize = menu.categories.iter().take(ci).map(|c| c.items.len()).sum();
    match rows.get(before) {
        Some(row) => format!("row {row}, category{rest}"),
        None => problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_written_and_read_in_the_currencys_digits() {
        assert_eq!(format_price(850, 2), "8.50");
        assert_eq!(format_price(5, 2), "0.05");
        assert_eq!(format_price(1200, 0), "1200");
        assert_eq!(format_price(-150, 2), "-1.50");
        assert_eq!(parse_price("8.50", 2), Some(850));
        assert_eq!(parse_price("8,5", 2), Some(850));
        assert_eq!(parse_price("8", 2), Some(800));
        assert_eq!(parse_price(" 1200 ", 0), Some(1200));
        for bad in ["8.505", "8.", ".5", "", "abc", "-1", "1.2.3", "1e3", "12.5"] {
            let digits = if bad == "12.5" { 0 } else { 2 };
            assert_eq!(parse_price(bad, digits), None, "{bad}");
        }
    }

    #[test]
    fn a_paths_problem_names_its_row() {
        let csv = "category_id,category_name:en,id,name:en,price,station\n\
                   mains,Mains,a,A,1.00,grill\n\
                   mains,,b,B,2.00,grill\n\
                   drinks,Drinks,c,C,3.00,bar\n";
        let (menu, rows) = from_csv(csv, 2).unwrap();
        assert_eq!(rows, [2, 3, 4]);
        assert_eq!(
            row_of_path("categories[0].items[1].station: bad", &menu, &rows),
            "row 3, station: bad"
        );
        assert_eq!(
            row_of_path("categories[1].items[0].price: bad", &menu, &rows),
            "row 4, price: bad"
        );
        assert_eq!(
            row_of_path("categories[1].name: bad", &menu, &rows),
            "row 4, category.name: bad"
        );
    }
}
