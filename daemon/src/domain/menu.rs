//! The menu: categories, items with localized names, prices in minor units, stations,
//! allergens, modifier groups, availability and optional stock — and its validation and
//! per-language view.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::is_slug;
use crate::error::TxResult;
use crate::error::{AppError, ErrorKind};
use crate::store::writer::{Cached, Shared, Tx};
use crate::store::{Stored, codec};

/// Text per language code, e.g. `{"en": "Burger", "sq": "Hamburger"}`. `en` is required.
pub type Localized = BTreeMap<String, String>;

/// Largest price or price delta, in minor units (10 million of the currency).
pub const MAX_PRICE: i64 = 1_000_000_000;

/// The whole menu, as an admin uploads it with `PUT /menu`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    /// Categories in display order.
    pub categories: Vec<Category>,
}

/// The menu the writer keeps in memory beside its stored row (its cached value).
pub fn cached(menu: Menu) -> Cached {
    Arc::new(menu)
}

/// An empty menu, for a cached value that is not a menu (never set so by the daemon).
static EMPTY: LazyLock<Menu> = LazyLock::new(Menu::default);

/// The menu as of this point in the batch.
pub fn of<'a>(tx: &'a Tx<'_>) -> &'a Menu {
    tx.cached().downcast_ref::<Menu>().unwrap_or(&EMPTY)
}

/// [`of`], as a handle that outlives the borrow of `tx`.
pub fn arc_of(tx: &Tx<'_>) -> Arc<Menu> {
    downcast(Arc::clone(tx.cached()))
}

/// The committed menu.
pub fn committed(shared: &Shared) -> Arc<Menu> {
    downcast(shared.cached())
}

fn downcast(cached: Cached) -> Arc<Menu> {
    cached
        .downcast::<Menu>()
        .unwrap_or_else(|_| Arc::new(Menu::default()))
}

/// Stores `menu` and makes it the batch's menu (readers see it once the batch commits).
pub fn replace(tx: &mut Tx<'_>, menu: Menu) -> TxResult<()> {
    tx.menu_table
        .insert("menu", codec::encode(&menu)?.as_slice())?;
    tx.replace_cached(Arc::new(menu));
    Ok(())
}

/// A category of items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Stable id (`[a-z0-9_-]`).
    pub id: String,
    /// Localized name.
    pub name: Localized,
    /// Items in display order.
    pub items: Vec<Item>,
}

/// A menu item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Stable id (`[a-z0-9_-]`), referenced by orders.
    pub id: String,
    /// Localized name.
    pub name: Localized,
    /// Localized description.
    #[serde(default)]
    pub description: Localized,
    /// Price in minor units.
    pub price: i64,
    /// Kitchen station that makes it.
    pub station: String,
    /// Allergen codes (`gluten`, `milk`, …).
    #[serde(default)]
    pub allergens: Vec<String>,
    /// Modifier groups.
    #[serde(default)]
    pub modifier_groups: Vec<ModifierGroup>,
    /// Whether staff have it on (stock 0 also makes it unavailable).
    #[serde(default = "yes")]
    pub available: bool,
    /// Initial stock when uploaded; `null` means stock is not tracked. The live level is kept
    /// apart (see `POST /menu/items/{id}/stock`).
    #[serde(default)]
    pub stock: Option<u32>,
    /// A `stock_low` event is raised when stock falls to this level.
    #[serde(default)]
    pub low_stock_threshold: Option<u32>,
}

fn yes() -> bool {
    true
}

/// A group of options, e.g. "Size" (choose exactly 1) or "Extras" (0 to 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModifierGroup {
    /// Id, unique within the item.
    pub id: String,
    /// Localized name.
    pub name: Localized,
    /// Fewest options to choose.
    pub min: u32,
    /// Most options to choose.
    pub max: u32,
    /// The options.
    pub options: Vec<ModifierOption>,
}

/// One option of a modifier group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModifierOption {
    /// Id, unique within the item.
    pub id: String,
    /// Localized name.
    pub name: Localized,
    /// Added to the item's price (may be negative).
    #[serde(default)]
    pub price_delta: i64,
}

impl Stored for Menu {
    const WHAT: &'static str = "menu";
}

/// Picks `lang`, else `fallback`, else `en`, else any.
pub fn localize<'a>(text: &'a Localized, lang: &str, fallback: &str) -> &'a str {
    text.get(lang)
        .or_else(|| text.get(fallback))
        .or_else(|| text.get("en"))
        .or_else(|| text.values().next())
        .map_or("", String::as_str)
}

impl Menu {
    /// Finds an item by id.
    pub fn item(&self, id: &str) -> Option<&Item> {
        self.categories
            .iter()
            .flat_map(|c| c.items.iter())
            .find(|i| i.id == id)
    }

    /// Finds an item by id, mutably.
    pub fn item_mut(&mut self, id: &str) -> Option<&mut Item> {
        self.categories
            .iter_mut()
            .flat_map(|c| c.items.iter_mut())
            .find(|i| i.id == id)
    }

    /// An item's allergens (none for an item not on the menu any more).
    pub fn allergens_of(&self, item_id: &str) -> &[String] {
        self.items()
            .find(|i| i.id == item_id)
            .map_or(&[], |i| i.allergens.as_slice())
    }

    /// Every item, in menu order.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.categories.iter().flat_map(|c| c.items.iter())
    }

    /// Checks the whole menu and reports every problem at once (422 with a list in details).
    pub fn validate(&self, max_text: usize) -> Result<(), AppError> {
        let mut problems: Vec<String> = Vec::new();
        let mut cat_ids = HashSet::new();
        let mut item_ids = HashSet::new();
        if self.categories.len() > 200 {
            problems.push("categories: at most 200".into());
        }
        for (ci, c) in self.categories.iter().enumerate() {
            let at = format!("categories[{ci}]");
            if !is_slug(&c.id, 64) {
                problems.push(format!("{at}.id: 1-64 characters of a-z, 0-9, _ or -"));
            } else if !cat_ids.insert(c.id.as_str()) {
                problems.push(format!("{at}.id: duplicate {:?}", c.id));
            }
            check_localized(
                &mut problems,
                &format!("{at}.name"),
                &c.name,
                true,
                max_text,
            );
            if c.items.len() > 500 {
                problems.push(format!("{at}.items: at most 500"));
            }
            for (ii, item) in c.items.iter().enumerate() {
                let at = format!("{at}.items[{ii}]");
                if !is_slug(&item.id, 64) {
                    problems.push(format!("{at}.id: 1-64 characters of a-z, 0-9, _ or -"));
                } else if !item_ids.insert(item.id.as_str()) {
                    problems.push(format!("{at}.id: duplicate {:?}", item.id));
                }
                item.check(&at, &mut problems, max_text);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorKind::Unprocessable,
                "invalid_menu",
                format!("the menu has {} problem(s); see details", problems.len()),
            )
            .with_details(json!({ "problems": problems })))
        }
    }
}

impl Item {
    /// Checks one item (everything except id uniqueness).
    fn check(&self, at: &str, problems: &mut Vec<String>, max_text: usize) {
        check_localized(problems, &format!("{at}.name"), &self.name, true, max_text);
        check_localized(
            problems,
            &format!("{at}.description"),
            &self.description,
            false,
            max_text,
        );
        if !(0..=MAX_PRICE).contains(&self.price) {
            problems.push(format!("{at}.price: 0 to {MAX_PRICE} minor units"));
        }
        if !is_slug(&self.station, 32) {
            problems.push(format!("{at}.station: 1-32 characters of a-z, 0-9, _ or -"));
        }
        if self.allergens.len() > 20 || self.allergens.iter().any(|a| !is_slug(a, 32)) {
            problems.push(format!("{at}.allergens: at most 20 codes like \"gluten\""));
        }
        if self.modifier_groups.len() > 20 {
            problems.push(format!("{at}.modifier_groups: at most 20"));
        }
        let mut group_ids = HashSet::new();
        let mut option_ids = HashSet::new();
        for (gi, g) in self.modifier_groups.iter().enumerate() {
            let at = format!("{at}.modifier_groups[{gi}]");
            if !is_slug(&g.id, 64) || !group_ids.insert(g.id.as_str()) {
                problems.push(format!("{at}.id: missing, malformed or duplicate"));
            }
            check_localized(problems, &format!("{at}.name"), &g.name, true, max_text);
            if g.options.is_empty() || g.options.len() > 50 {
                problems.push(format!("{at}.options: 1 to 50 options"));
            }
            if g.min > g.max || g.max as usize > g.options.len() {
                problems.push(format!(
                    "{at}: need min <= max <= number of options (min {}, max {}, options {})",
                    g.min,
                    g.max,
                    g.options.len()
                ));
            }
            for (oi, o) in g.options.iter().enumerate() {
                let at = format!("{at}.options[{oi}]");
                if !is_slug(&o.id, 64) || !option_ids.insert(o.id.as_str()) {
                    problems.push(format!(
                        "{at}.id: missing, malformed or duplicate within the item"
                    ));
                }
                check_localized(problems, &format!("{at}.name"), &o.name, true, max_text);
                if !(-MAX_PRICE..=MAX_PRICE).contains(&o.price_delta) {
                    problems.push(format!("{at}.price_delta: out of range"));
                }
            }
        }
        if self.stock.is_none() && self.low_stock_threshold.is_some() {
            problems.push(format!(
                "{at}.low_stock_threshold: only for items with stock"
            ));
        }
    }

    /// Finds an option and its group.
    pub fn option(&self, option_id: &str) -> Option<(&ModifierGroup, &ModifierOption)> {
        self.modifier_groups
            .iter()
            .find_map(|g| g.options.iter().find(|o| o.id == option_id).map(|o| (g, o)))
    }
}

fn check_localized(
    problems: &mut Vec<String>,
    at: &str,
    text: &Localized,
    required: bool,
    max_text: usize,
) {
    if required && text.get("en").is_none_or(|s| s.trim().is_empty()) {
        problems.push(format!("{at}: an \"en\" text is required"));
    }
    if text.len() > 20 {
        problems.push(format!("{at}: at most 20 languages"));
    }
    for (lang, s) in text {
        if !is_slug(lang, 8) {
            problems.push(format!("{at}: {lang:?} is not a language code"));
        }
        if s.chars().count() > max_text {
            problems.push(format!("{at}.{lang}: at most {max_text} characters"));
        }
    }
}

/// Live stock levels, by item id (only tracked items).
pub type StockLevels = BTreeMap<String, u32>;

/// Whether customers can order the item now.
pub fn is_available(item: &Item, stock: &StockLevels) -> bool {
    item.available && stock.get(&item.id).is_none_or(|&n| n > 0)
}

/// The public menu in one language, as `GET /menu` returns it.
pub fn view(menu: &Menu, stock: &StockLevels, lang: &str, fallback: &str, currency: &str) -> Value {
    let categories: Vec<Value> = menu
        .categories
        .iter()
        .map(|c| {
            let items: Vec<Value> = c
                .items
                .iter()
                .map(|i| {
                    let mut v = json!({
                        "id": i.id,
                        "name": localize(&i.name, lang, fallback),
                        "description": localize(&i.description, lang, fallback),
                        "price": i.price,
                        "currency": currency,
                        "available": is_available(i, stock),
                        "station": i.station,
                        "allergens": i.allergens,
                        "modifier_groups": i.modifier_groups.iter().map(|g| json!({
                            "id": g.id,
                            "name": localize(&g.name, lang, fallback),
                            "min": g.min,
                            "max": g.max,
                            "options": g.options.iter().map(|o| json!({
                                "id": o.id,
                                "name": localize(&o.name, lang, fallback),
                                "price_delta": o.price_delta,
                            })).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    });
                    if let Some(n) = stock.get(&i.id) {
                        v["stock"] = json!(n);
                    }
                    v
                })
                .collect();
            json!({ "id": c.id, "name": localize(&c.name, lang, fallback), "items": items })
        })
        .collect();
    json!({ "lang": lang, "currency": currency, "categories": categories })
}
