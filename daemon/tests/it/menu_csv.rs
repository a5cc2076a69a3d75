//! The menu as a spreadsheet (`GET`/`PUT /api/v1/menu/csv`): an export imported again is the
//! same menu and exports the same bytes; a spreadsheet with mistakes changes nothing and names
//! every problem by row and column; only an admin may do either.

use std::fmt::Write as _;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, error_code};

async fn export(s: &TestServer) -> String {
    let (st, v) = s
        .send("GET", "/api/v1/menu/csv", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v.as_str().expect("CSV text").to_owned()
}

async fn import(s: &TestServer, csv: &str) -> (StatusCode, Value) {
    s.raw(
        "PUT",
        "/api/v1/menu/csv",
        Some(&s.admin),
        csv.as_bytes().to_vec(),
    )
    .await
}

/// The problems an import was refused with.
fn problems_of(v: &Value) -> Vec<&str> {
    v["error"]["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect()
}

async fn whole_menu(s: &TestServer) -> Value {
    // Every language's view of the menu.
    let mut out = Vec::new();
    for lang in ["en", "sq"] {
        let (_, v) = s
            .send("GET", &format!("/api/v1/menu?lang={lang}"), None, None)
            .await;
        out.push(v);
    }
    Value::Array(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_menu_imports_to_the_same_menu_and_the_same_bytes() {
    let s = TestServer::start().await;
    let before = whole_menu(&s).await;
    let csv = export(&s).await;
    assert!(
        csv.starts_with('\u{feff}'),
        "a byte-order mark for spreadsheets"
    );
    let header = csv.lines().next().unwrap();
    for col in [
        "category_id",
        "name:en",
        "name:sq",
        "price",
        "station",
        "allergens",
        "modifier_groups",
    ] {
        assert!(header.contains(col), "{header}");
    }
    // Prices in the currency's units, modifiers as JSON, allergens with semicolons.
    let burger = csv
        .lines()
        .find(|l| l.contains(",burger,"))
        .expect("the burger's row");
    assert!(
        burger.contains(",8.50,grill,gluten;milk;mustard,yes,"),
        "{burger}"
    );
    let (st, v) = import(&s, &csv).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["items"],
        before[0]["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["items"].as_array().unwrap().len())
            .sum::<usize>()
    );
    assert_eq!(whole_menu(&s).await, before);
    assert_eq!(export(&s).await, csv, "the same bytes");
    // Edited as a spreadsheet would be: Albanian letters, a quoted comma and a line break in a
    // description, a comma as the decimal mark, a new language column; and 120 items.
    let mut rows = vec![
        "category_id,category_name:en,category_name:sq,id,name:en,name:sq,description:en,price,station,allergens,available,stock,low_stock_threshold,modifier_groups".to_owned(),
    ];
    for n in 0..120 {
        let cat = ["mains", "drinks", "desserts"][n % 3];
        rows.push(format!(
            "{cat},{},Kategori {cat},item-{n},Item {n},Pjatë {n} çaj,\"Hot, fresh\nand good\",{}.{:02},{},milk;egg,{},{},{},{}",
            cat.to_uppercase(),
            n + 1,
            n % 100,
            if n % 3 == 1 { "bar" } else { "grill" },
            if n % 7 == 0 { "no" } else { "yes" },
            if n % 5 == 0 { "10" } else { "" },
            if n % 5 == 0 { "2" } else { "" },
            if n == 0 {
                r#""[{""id"":""size"",""name"":{""en"":""Size""},""min"":1,""max"":1,""options"":[{""id"":""s"",""name"":{""en"":""Small""}},{""id"":""l"",""name"":{""en"":""Large""},""price_delta"":150}]}]""#
            } else {
                ""
            },
        ));
    }
    rows[1] = rows[1].replacen("1.00", "\"1,00\"", 1);
    let sheet = rows.join("\r\n");
    let (st, v) = import(&s, &sheet).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["items"], 120);
    let (_, sq) = s.send("GET", "/api/v1/menu?lang=sq", None, None).await;
    let first = &sq["categories"][0]["items"][0];
    assert_eq!(first["name"], "Pjatë 0 çaj");
    assert_eq!(first["price"], 100);
    assert_eq!(
        first["modifier_groups"][0]["options"][1]["price_delta"],
        150
    );
    let again = export(&s).await;
    let (st, _) = import(&s, &again).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(export(&s).await, again, "an edited sheet round-trips too");
    // A guest can order from the new menu.
    let (st, v) = s
        .order(&s.admin, json!([{"item_id": "item-1", "quantity": 2}]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["total"], 402, "2 × 2.01");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spreadsheet_with_mistakes_changes_nothing_and_names_each_row() {
    let s = TestServer::start().await;
    let before = whole_menu(&s).await;
    let sheet = "category_id,category_name:en,id,name:en,price,station,allergens,available,modifier_groups\n\
                 mains,Mains,ok,Fine,1.00,grill,,yes,\n\
                 mains,Mains,cheap,Cheap,1.005,grill,,yes,\n\
                 mains,Mains,BAD ID,Bad,1.00,grill,,yes,\n\
                 mains,Mains,maybe,Maybe,1.00,grill,,perhaps,\n\
                 mains,Mains,mods,Mods,1.00,grill,,yes,[oops\n\
                 mains,Mains,ok,Twice,1.00,grill,,yes,\n";
    let (st, v) = import(&s, sheet).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(error_code(&v), "invalid_csv");
    let problems = problems_of(&v);
    // The format's problems come first, each with its row; the menu's rules are checked once
    // the rows read.
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("row 3, price"), "{problems:?}");
    assert!(problems[1].starts_with("row 5, available"), "{problems:?}");
    assert!(
        problems[2].starts_with("row 6, modifier_groups"),
        "{problems:?}"
    );
    let fixed = sheet
        .replace("1.005", "1.05")
        .replace("perhaps", "no")
        .replace("[oops", "");
    let (st, v) = import(&s, &fixed).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let problems = problems_of(&v);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("row 4, id"), "{problems:?}");
    assert!(
        problems[1].starts_with("row 7, id: duplicate"),
        "{problems:?}"
    );
    // Columns: unknown and missing ones, all named at once.
    let (_, v) = import(&s, "category_id,id,nam:en,colour\nmains,x,X,red\n").await;
    let problems = v["error"]["details"]["problems"].to_string();
    for want in [
        "\\\"nam:en\\\": unknown column",
        "\\\"colour\\\": unknown column",
        "name:en is missing",
        "price is missing",
        "station is missing",
    ] {
        assert!(problems.contains(want), "{want} in {problems}");
    }
    // Not text, or a row of the wrong length.
    let (st, v) = s
        .raw(
            "PUT",
            "/api/v1/menu/csv",
            Some(&s.admin),
            vec![0xff, 0xfe, 0x00],
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, v) = import(
        &s,
        "category_id,category_name:en,id,name:en,price,station\nmains,Mains,a\n",
    )
    .await;
    assert!(
        v["error"]["details"]["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("row 2"),
        "{v}"
    );
    // Larger than 1 MiB: refused whole.
    let huge = format!(
        "category_id,category_name:en,id,name:en,price,station\n{}",
        "mains,Mains,a,A,1.00,grill\n".repeat(45_000)
    );
    let (st, v) = import(&s, &huge).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(error_code(&v), "body_too_large");
    assert_eq!(whole_menu(&s).await, before, "nothing changed");
    // A real menu's spreadsheet is larger than a JSON request may be, and is taken whole.
    let mut big =
        String::from("category_id,category_name:en,id,name:en,description:en,price,station\n");
    let description = "slow-cooked ".repeat(20);
    for n in 0..400 {
        writeln!(
            big,
            "mains,Mains,dish-{n},Dish {n},{description},9.99,grill"
        )
        .unwrap();
    }
    assert!(big.len() > 100_000);
    let (st, v) = import(&s, &big).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["items"], 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_reads_or_replaces_the_menu_as_a_spreadsheet() {
    let s = TestServer::start().await;
    let waiter = s.user("wendy", "staff").await;
    let csv = export(&s).await;
    for token in [Some(waiter.as_str()), None] {
        let (st, _) = s.send("GET", "/api/v1/menu/csv", token, None).await;
        assert!(
            st == StatusCode::FORBIDDEN || st == StatusCode::UNAUTHORIZED,
            "{st}"
        );
        let (st, _) = s
            .raw("PUT", "/api/v1/menu/csv", token, csv.as_bytes().to_vec())
            .await;
        assert!(
            st == StatusCode::FORBIDDEN || st == StatusCode::UNAUTHORIZED,
            "{st}"
        );
    }
    s.stop().await;
}
