//! Item photos (`PUT`/`DELETE /api/v1/menu/items/{id}/photo`, `GET /photos/{item}.jpg`): a
//! phone's picture is shrunk to a small JPEG, listed in the menu and served cached for good;
//! pictures the box cannot read, items it does not have, other roles and a full budget are
//! refused; a removed photo is gone.

use std::io::Cursor;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TestServer, error_code};

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 3 % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn upload(
    s: &TestServer,
    item: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    s.raw(
        "PUT",
        &format!("/api/v1/menu/items/{item}/photo"),
        token,
        body,
    )
    .await
}

async fn photo_in_menu(s: &TestServer, item: &str) -> Value {
    let (_, menu) = s.send("GET", "/api/v1/menu?lang=en", None, None).await;
    menu["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["items"].as_array().unwrap().iter())
        .find(|i| i["id"] == item)
        .map(|i| i["photo"].clone())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_shrunk_listed_and_served_cached_then_removed() {
    let s = TestServer::start().await;
    let (st, v) = upload(&s, "burger", Some(&s.admin), png(1600, 1200)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let url = v["photo"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/photos/burger.jpg?v="), "{url}");
    assert_eq!(photo_in_menu(&s, "burger").await, url.as_str());
    assert_eq!(photo_in_menu(&s, "espresso").await, Value::Null);
    // Served to anyone (the guest page), as a small JPEG, cached for good.
    let resp = reqwest::get(s.url(&url)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, v["bytes"].as_u64().unwrap());
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (640, 480));
    // A new upload has a new address.
    let (_, again) = upload(&s, "burger", Some(&s.admin), png(800, 800)).await;
    assert_ne!(again["photo"], url.as_str());
    // Removed: gone from the menu and the folder.
    let remove = || {
        s.send(
            "DELETE",
            "/api/v1/menu/items/burger/photo",
            Some(&s.admin),
            None,
        )
    };
    let (st, _) = remove().await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(photo_in_menu(&s, "burger").await, Value::Null);
    let resp = reqwest::get(s.url("/photos/burger.jpg")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (st, v) = remove().await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pictures_other_roles_unknown_items_and_a_full_budget_are_refused() {
    let s = TestServer::start_with(|c| c.limits.photos_budget_bytes = 250_000).await;
    let (st, v) = upload(&s, "burger", Some(&s.admin), b"not a picture".to_vec()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(error_code(&v), "invalid_photo");
    let cut = png(400, 400);
    let (st, _) = upload(&s, "burger", Some(&s.admin), cut[..cut.len() / 2].to_vec()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = upload(&s, "no-such-item", Some(&s.admin), png(100, 100)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let waiter = s.user("wendy", "staff").await;
    let (st, _) = upload(&s, "burger", Some(&waiter), png(100, 100)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = upload(&s, "burger", None, png(100, 100)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = upload(&s, "burger", Some(&s.admin), vec![0u8; 9 << 20]).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // The budget: photos fill it, then the next is refused and the others stay.
    let mut stored = Vec::new();
    let full = loop {
        let item = ["burger", "tave_kosi", "greek_salad", "espresso", "lemonade"][stored.len()];
        let (st, v) = upload(&s, item, Some(&s.admin), png(1600, 1200)).await;
        if st != StatusCode::OK {
            break v;
        }
        stored.push(item);
    };
    assert!(!stored.is_empty());
    assert_eq!(error_code(&full), "photos_budget_full", "{full}");
    for item in &stored {
        assert!(photo_in_menu(&s, item).await.is_string());
    }
    s.stop().await;
}
