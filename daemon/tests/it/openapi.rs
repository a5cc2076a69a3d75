//! The OpenAPI document served at /api/v1/openapi.json lists exactly the router's routes.
use crate::common;

use std::collections::BTreeSet;

use common::TestServer;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_the_router() {
    let s = TestServer::start().await;
    let (st, doc) = s.send("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<_> = orderd::api::routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(
        documented, routed,
        "docs/openapi.json and api::routes() differ"
    );
    // And every documented route is really served (not the 404/405 fallback).
    for (method, path) in &routed {
        let concrete = path.replace("{id}", "x");
        // A live stream would never end: a bad Last-Event-ID makes it answer 400 at once.
        let headers: &[(&str, &str)] = if path.ends_with("/events") {
            &[("last-event-id", "not-a-number")]
        } else {
            &[]
        };
        let (st, v) = s
            .send_with(method, &concrete, Some(&s.admin), None, headers)
            .await;
        let code = v["error"]["code"].as_str().unwrap_or("");
        assert!(
            code != "route_not_found"
                && code != "method_not_allowed"
                && st != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed: {st} {v}"
        );
    }
    s.stop().await;
}
