//! `GET /api/openapi.json`: the contract, generated from the handlers'
//! own annotations. schemathesis fuzzes the server against it in CI
//! (`scripts/schemathesis/run`); this pins what it covers.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, STREAM_SECRET, each_backend, spawn_app_with};

/// Every route of the external interface (DESIGN.md section 6).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/admin/actors"),
    ("post", "/admin/actors/{meeting_id}/kill"),
    ("get", "/admin/meetings/{meeting_id}"),
    ("post", "/admin/supervisor/kill"),
    ("get", "/api/agents"),
    ("post", "/api/agents"),
    ("get", "/api/agents/{id}"),
    ("delete", "/api/agents/{id}"),
    ("get", "/api/meetings"),
    ("post", "/api/meetings"),
    ("get", "/api/meetings/{id}"),
    ("delete", "/api/meetings/{id}"),
    ("post", "/api/meetings/{id}/call"),
    ("get", "/api/meetings/{id}/events"),
    ("post", "/api/meetings/{id}/hangup"),
    ("post", "/api/meetings/{id}/page-link"),
    ("post", "/api/meetings/{id}/retry"),
    ("get", "/api/meetings/{id}/status"),
    ("get", "/api/meetings/{id}/transcript"),
    ("get", "/api/meetings/{id}/notes"),
    ("get", "/api/meetings/{id}/usage"),
    ("post", "/api/openai/webhook"),
    ("get", "/api/openapi.json"),
    ("post", "/api/webhook"),
    ("get", "/assets/meeting.css"),
    ("get", "/assets/meeting.js"),
    ("get", "/healthz"),
    ("get", "/meetings/{id}"),
    ("get", "/metrics"),
    ("get", "/readyz"),
];

#[tokio::test]
async fn the_document_covers_every_route_with_its_auth_and_every_answer() {
    each_backend(|_, url| async move {
        // Every secret set: an unsigned webhook is 401, not "unconfigured".
        let app = spawn_app_with(&url, |settings| {
            settings.stream_api_secret = Some(STREAM_SECRET.into());
            settings.admin_token = Some(ADMIN_TOKEN.into());
            settings.openai_webhook_secret = Some("whsec_c2NyaWJlLW9wZW5hcGktdGVzdA==".into());
        })
        .await;
        let answer = app.get("/api/openapi.json").await;
        assert_eq!(answer.status(), StatusCode::OK);
        let doc: Value = answer.json().await.expect("JSON");
        assert_eq!(doc["openapi"], "3.1.0");

        let mut operations = BTreeSet::new();
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("security schemes");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                operations.insert((method.clone(), path.clone()));
                let at = format!("{method} {path}");
                assert!(
                    operation["operationId"].is_string(),
                    "{at}: an operation id"
                );
                // A parameter is named once (the path's own and an inferred
                // one would be two).
                let parameters: Vec<(String, String)> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| (p["name"].to_string(), p["in"].to_string()))
                    .collect();
                let unique: BTreeSet<_> = parameters.iter().collect();
                assert_eq!(unique.len(), parameters.len(), "{at}: {parameters:?}");
                let answers = operation["responses"].as_object().expect("responses");
                assert!(
                    answers.keys().any(|s| s.starts_with('2')),
                    "{at}: a success answer"
                );
                for (status, answer) in answers {
                    assert!(
                        answer["description"].is_string(),
                        "{at} {status}: described"
                    );
                }
                // Every route behind a token or a signature says which, and
                // what it answers without one.
                if let Some(security) = operation["security"].as_array() {
                    for requirement in security {
                        for name in requirement.as_object().expect("requirement").keys() {
                            assert!(schemes.contains_key(name), "{at}: scheme {name} defined");
                        }
                    }
                    assert!(answers.contains_key("401"), "{at}: 401 documented");
                }
                // Every API route can be shed, cut off or refused for size.
                if path.starts_with("/api/") || path.starts_with("/admin/") {
                    for status in ["408", "413", "503"] {
                        assert!(answers.contains_key(status), "{at}: {status} documented");
                    }
                }
            }
        }
        let expected: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(operations, expected);

        // The auth the document states is the auth the server enforces.
        for (method, path, scheme) in [
            ("get", "/api/agents", "api_token"),
            ("get", "/admin/actors", "admin_token"),
            ("post", "/api/webhook", "stream_signature"),
            ("post", "/api/openai/webhook", "openai_signature"),
        ] {
            let operation = &doc["paths"][path][method];
            assert_eq!(
                operation["security"][0]
                    .as_object()
                    .map(|o| o.contains_key(scheme)),
                Some(true),
                "{method} {path} needs {scheme}"
            );
            let refused = app
                .client
                .request(
                    method.to_uppercase().parse().expect("method"),
                    app.url(path),
                )
                .send()
                .await
                .expect("sent");
            assert_eq!(
                refused.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
        }
        for public in ["/healthz", "/api/openapi.json", "/assets/meeting.js"] {
            let operation = &doc["paths"][public]["get"];
            assert!(operation["security"].is_null(), "{public} is public");
        }
    })
    .await;
}
