//! `GET /api/openapi.json`: the HTTP contract as an OpenAPI 3.1 document,
//! generated from the handlers' own annotations and types (utoipa). The
//! router is built from the same annotations ([`super::router`] takes each
//! route from its handler's `#[utoipa::path]`), so a route cannot exist
//! without its entry here, nor an entry without its route.

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Header, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

/// The document, serialized once when the router is built.
#[derive(Clone)]
pub struct OpenApiJson(pub std::sync::Arc<str>);

/// The parts of the document that are not a route: what it is, its
/// security schemes and the answers every API route can give.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "scribe",
        description = "Actor-based realtime session supervisor for AI voice calls: meetings, \
                       their live transcript and their post-call analysis.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    components(schemas(ErrorBody, crate::domain::agent::BlueprintSession)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "agents", description = "Agents and their multi-session plans (API token)."),
        (name = "meetings", description = "Meetings, their status, transcript and analysis."),
        (name = "calls", description = "Calls a browser carries (WebRTC), and hanging up."),
        (name = "webhooks", description = "Signed deliveries from Stream and OpenAI."),
        (name = "pages", description = "The meeting page and its assets (public)."),
        (name = "admin", description = "Live actors and a meeting's full error story (admin token)."),
        (name = "probes", description = "Liveness, readiness and the Prometheus scrape."),
    ),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_default();
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "api_token",
            bearer("`SCRIBE_API_TOKEN`: creating and listing agents and meetings; acting on any meeting."),
        );
        components.add_security_scheme(
            "admin_token",
            bearer("`SCRIBE_ADMIN_TOKEN`: the `/admin` routes; without it set, they answer 401."),
        );
        components.add_security_scheme(
            "meeting_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                super::auth::MEETING_TOKEN_HEADER,
                "A meeting's page key (the `key` of its page link: an HMAC of the meeting id and \
                 its link generation under the page secret): that one meeting only.",
            ))),
        );
        components.add_security_scheme(
            "meeting_key",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                super::auth::MEETING_KEY_PARAM,
                "The same page key, in the page link's query (`/meetings/{id}?key=...`) and an \
                 event stream's address.",
            ))),
        );
        components.add_security_scheme(
            "stream_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-signature",
                "Stream's signature: hex HMAC-SHA256 of the raw body under `STREAM_API_SECRET`.",
            ))),
        );
        components.add_security_scheme(
            "openai_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "webhook-signature",
                "OpenAI's Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, \
                 `webhook-signature`) under `OPENAI_WEBHOOK_SECRET`.",
            ))),
        );
    }
}

fn error_answer(description: &str, retry_after: bool) -> RefOr<utoipa::openapi::Response> {
    let mut answer = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if retry_after {
        answer = answer.header(
            "retry-after",
            Header::builder()
                .schema(Some(<u64 as utoipa::PartialSchema>::schema()))
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
    RefOr::T(answer.build())
}

/// Every API route (the probes are outside these layers) passes the body
/// deadline, the body bound and the requests-in-flight bound, and most read
/// the database: those answers are added to each operation of `api`, once.
pub fn add_common_answers(api: &mut Document) {
    for (path, item) in &mut api.paths.paths {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let answers = &mut operation.responses.responses;
            let mut add = |status: &str, answer: RefOr<utoipa::openapi::Response>| {
                answers.entry(status.to_owned()).or_insert(answer);
            };
            add(
                "408",
                error_answer("The request body did not arrive within 10 s.", false),
            );
            add(
                "413",
                error_answer("The request body is over the route's limit.", false),
            );
            let reads_database = (path.starts_with("/api/") && path != "/api/openapi.json")
                || path.starts_with("/admin/");
            if reads_database {
                add(
                    "500",
                    error_answer(
                        "The database failed; the cause is in the server log.",
                        false,
                    ),
                );
            }
            add(
                "503",
                error_answer(
                    "The server is at its limit of requests in flight, or a part it needs \
                     is unavailable.",
                    true,
                ),
            );
        }
    }
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "probes",
    operation_id = "openapi",
    responses((status = 200, description = "This document.", content_type = "application/json", body = Object)),
)]
pub async fn document(Extension(json): Extension<OpenApiJson>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.0.to_string(),
    )
}

/// What a route on one meeting answers when the id does not name one, or
/// the caller may not act on it.
#[derive(utoipa::IntoResponses)]
pub enum MeetingLookup {
    /// The id is not a UUID.
    #[response(status = 400)]
    BadId(ErrorBody),
    /// A bearer token that is not the API token.
    #[response(status = 401)]
    BadToken(ErrorBody),
    /// No such meeting, or neither the API token nor this meeting's
    /// current page key (an id alone opens nothing).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The meeting was deleted (to the API token, or the key its link
    /// carried): nothing of it is served.
    #[response(status = 410)]
    Gone(ErrorBody),
}
