//! The HTTP surface: REST under `/api/v1` (one module per resource), health probes, the JWKS
//! and the OpenAPI 3.1 document generated from the handlers' annotations.

pub mod accounts;
pub mod appointments;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod centers;
pub mod cluster;
pub mod inspections;
pub mod listing;
pub mod point_today;
pub mod points;
pub mod rosters;
pub mod stats;
pub mod terminal_health;
pub mod terminals;
pub mod tickets;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use shared::api::Health;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest JSON body the API accepts.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Longest request target (path and query) accepted.
pub const MAX_URI_BYTES: usize = 2048;

/// `YYYY-MM-DD` in the years the calendar knows (`calendar::YEARS`); the document adds
/// `format: date`, so together they say what `calendar::parse_date` accepts.
const DATE_PATTERN: &str = "^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

/// What `shared::validate::PersonName` accepts: no C0/C1 control characters, none of
/// `is_forbidden_format`'s characters nor ZWNJ/ZWJ, at least one character that is not a space.
const PERSON_NAME_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u2028-\\u202e\\u2060\\u2066-\\u2069\\ufeff]*\
    [^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u2028-\\u202e\\u2060\\u2066-\\u2069\\ufeff]\
    [^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u2028-\\u202e\\u2060\\u2066-\\u2069\\ufeff]*$";

#[derive(OpenApi)]
#[openapi(
    info(title = "帮办 Bangban API", description = "远程虚拟窗口 remote virtual window: REST API for the console, terminals and admin"),
    tags((name = "auth"), (name = "accounts"), (name = "points"), (name = "catalog"), (name = "centers"), (name = "terminals"), (name = "tickets"), (name = "audit"), (name = "stats"), (name = "rectifications"), (name = "calendar"), (name = "cases"), (name = "appointments"), (name = "materials"), (name = "health")),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

/// Operations anyone may call: marked as needing no authentication in the document.
pub const PUBLIC_OPERATIONS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/.well-known/jwks.json",
    "/api/v1/points.geojson",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/terminals/enroll",
    "/api/v1/terminals/token",
];

/// Documents what every operation can answer besides its own responses: the error statuses
/// that come from the shared extractors and layers (a malformed or oversized body, a wrong
/// content type, a missing or refused token, a throttled client, an internal failure), each with
/// the `{"error":{"code","message"}}` body. Public operations need no token. Applied to the
/// assembled document (the routes' paths exist only after `split_for_parts`).
struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        let common: &[(&str, &str, bool)] = &[
            ("400", "malformed request", false),
            ("401", "missing, expired or revoked token", true),
            ("403", "the caller's role may not do this", true),
            ("413", "body too large", false),
            ("414", "request target too long", false),
            ("415", "wrong content type", false),
            ("422", "body does not match the schema", false),
            ("429", "too many attempts: retry after `Retry-After` seconds", false),
            ("500", "internal error (details are logged, never sent)", false),
            ("503", "not answerable now (e.g. the switchboard did not confirm a call's state): retry", false),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = PUBLIC_OPERATIONS.contains(&path.as_str());
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if public {
                    op.security = Some(vec![SecurityRequirement::default()]);
                }
                // An id in the path that names nothing (or is not an id at all).
                if path.contains('{') && !op.responses.responses.contains_key("404") {
                    op.responses.responses.insert("404".to_owned(), error("no such resource").into());
                }
                // tus: a request without `Tus-Resumable: 1.0.0`.
                if path.starts_with("/api/v1/uploads") && !op.responses.responses.contains_key("412") {
                    op.responses
                        .responses
                        .insert("412".to_owned(), error("Tus-Resumable: 1.0.0 required").into());
                }
                for (code, what, needs_auth) in common {
                    if (*needs_auth && public) || op.responses.responses.contains_key(*code) {
                        continue;
                    }
                    op.responses.responses.insert((*code).to_owned(), error(what).into());
                }
            }
        }
    }
}

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// Readiness: the node can serve — the database answers and the switchboard (the authority
/// for live calls on this node) answers, each within 2 s. A 503's message names every check
/// that failed.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = shared::api::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let failed = crate::metrics::readiness(&state).await;
    if failed.is_empty() {
        axum::Json(Health { status: "ready".into() }).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", format!("未就绪：{}", failed.join("；")))
            .into_response()
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(auth::jwks))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::rotate_keys))
        .routes(routes!(auth::retire_key))
        .routes(routes!(cluster::view))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::update))
        .routes(routes!(accounts::reset_password))
        .routes(routes!(accounts::set_skills))
        .routes(routes!(centers::set_user_center))
        .routes(routes!(centers::list, centers::create))
        .routes(routes!(centers::update))
        .routes(routes!(centers::set_item_streets))
        .routes(routes!(points::list, points::create))
        .routes(routes!(points::get, points::update))
        .routes(routes!(points::close))
        .routes(routes!(points::reopen))
        .routes(routes!(points::history))
        .routes(routes!(point_today::today))
        .routes(routes!(points::geojson))
        .routes(routes!(points::map_outline))
        .routes(routes!(catalog::list_lines, catalog::create_line))
        .routes(routes!(catalog::update_line))
        .routes(routes!(catalog::list_items, catalog::create_item))
        .routes(routes!(catalog::get_item, catalog::update_item))
        .routes(routes!(terminals::list, terminals::create))
        .routes(routes!(terminal_health::board))
        .routes(routes!(terminal_health::alarms))
        .routes(routes!(terminals::new_code))
        .routes(routes!(terminals::revoke))
        .routes(routes!(terminals::enroll))
        .routes(routes!(terminals::device_token))
        .routes(routes!(terminals::availability))
        .routes(routes!(tickets::reveal))
        .routes(routes!(audit::page))
        .routes(routes!(audit::verify))
        .routes(routes!(stats::sessions))
        .routes(routes!(stats::summary))
        .routes(routes!(stats::daily))
        .routes(routes!(stats::list_rectifications))
        .routes(routes!(stats::callback))
        .merge(materials_router())
        .merge(cases_router())
        .merge(inspections_router())
        .merge(heartbeat_router())
}

/// Cases that outlive the call (issue 14): calendar, opening hours, work orders and follow-ups.
fn cases_router() -> OpenApiRouter<AppState> {
    use crate::calendar as cal;
    OpenApiRouter::new()
        .routes(routes!(cal::get_year, cal::put_year))
        .routes(routes!(cal::import))
        .routes(routes!(cal::deadline))
        .routes(routes!(points::get_opening_hours, points::put_opening_hours))
        .routes(routes!(rosters::get, rosters::put))
        .routes(routes!(crate::cases::orders::list, crate::cases::orders::create))
        .routes(routes!(crate::cases::orders::get))
        .routes(routes!(crate::cases::orders::step))
        .routes(routes!(crate::cases::orders::set_contact))
        .routes(routes!(crate::cases::orders::reveal_contact))
        .routes(routes!(crate::cases::orders::kiosk_contact))
        .routes(routes!(appointments::slots))
        .routes(routes!(appointments::book))
        .routes(routes!(appointments::check_in))
        .routes(routes!(appointments::list))
        .routes(routes!(appointments::cancel))
        .routes(routes!(crate::cases::outbox::put_webhook))
        .routes(routes!(crate::cases::outbox::list))
        .routes(routes!(crate::cases::outbox::retry))
        .routes(routes!(crate::cases::outbox::tasks))
        .routes(routes!(crate::cases::outbox::task_done))
        .routes(routes!(crate::cases::callbacks::list))
        .routes(routes!(crate::cases::callbacks::record))
        .routes(routes!(crate::cases::callbacks::put_settings))
        .routes(routes!(crate::cases::home_visits::list, crate::cases::home_visits::create))
        .routes(routes!(crate::cases::home_visits::step))
        .routes(routes!(crate::cases::problems::list, crate::cases::problems::create))
        .routes(routes!(crate::cases::problems::step))
        .routes(routes!(crate::cases::reports::get))
        .routes(routes!(crate::cases::reports::export))
}

/// Inspections (巡检, issue 16): schedules, records, photos. A photo's body is raw bytes of at
/// most `MAX_PHOTO_BYTES`, not JSON.
fn inspections_router() -> OpenApiRouter<AppState> {
    let photos = OpenApiRouter::new()
        .routes(routes!(inspections::add_photo))
        .layer(DefaultBodyLimit::max(inspections::MAX_PHOTO_BYTES));
    OpenApiRouter::new()
        .routes(routes!(inspections::list))
        .routes(routes!(inspections::point, inspections::record))
        .routes(routes!(inspections::put_schedule, inspections::delete_schedule))
        .routes(routes!(inspections::photo))
        .merge(photos)
}

/// The terminals' heartbeat takes at most `HEALTH_MAX_BODY` (16 KiB), not the JSON limit.
fn heartbeat_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(terminal_health::report))
        .layer(DefaultBodyLimit::max(shared::api::HEALTH_MAX_BODY))
}

/// Materials and printing. Uploads stream their bodies (bounded by the upload's declared
/// length), so the tus routes take the configured upload limit instead of the JSON limit.
fn materials_router() -> OpenApiRouter<AppState> {
    use crate::materials::{api as m, print, tus};
    let uploads = OpenApiRouter::new()
        .routes(routes!(tus::options, tus::create))
        .routes(routes!(tus::head, tus::patch, tus::terminate))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(m::list))
        .routes(routes!(m::get))
        .routes(routes!(m::content))
        .routes(routes!(m::thumbnail))
        .routes(routes!(m::review))
        .routes(routes!(m::purge))
        .routes(routes!(m::recordings))
        .routes(routes!(print::create, print::list_session))
        .routes(routes!(print::list_mine))
        .routes(routes!(print::claim))
        .routes(routes!(print::document))
        .routes(routes!(print::set_state))
        .routes(routes!(print::cancel))
        .merge(uploads)
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi() -> serde_json::Value {
    finish(api_router().split_for_parts().1)
}

/// What the derives cannot say, added to the assembled document: the shared error responses and
/// the constraints below, which the server checks and the document must therefore state. The
/// result stays JSON: utoipa's types cannot hold every keyword used here (an `anyOf` beside an
/// object's `properties`).
fn finish(mut doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    utoipa::Modify::modify(&ErrorResponses, &mut doc);
    let mut v = serde_json::to_value(&doc).unwrap_or_default();
    if let Some(schemas) = v.pointer_mut("/components/schemas").and_then(|s| s.as_object_mut()) {
        // Steps are internally tagged enums with `deny_unknown_fields`: no variant takes more.
        for name in ["OrderAction", "HomeVisitAction", "ProblemStepRequest"] {
            if let Some(variants) =
                schemas.get_mut(name).and_then(|s| s.get_mut("oneOf")).and_then(|o| o.as_array_mut())
            {
                for variant in variants.iter_mut().filter_map(|v| v.as_object_mut()) {
                    variant.insert("additionalProperties".into(), false.into());
                }
            }
        }
        // Lists of streets (`centers::check_streets`): bounded, each a bounded text.
        let street = serde_json::json!({ "type": "string", "maxLength": centers::MAX_NAME_CHARS,
            "pattern": shared::api::TEXT_PATTERN });
        for name in ["CreateCenterRequest", "UpdateCenterRequest", "SetItemStreetsRequest"] {
            if let Some(streets) = schemas.get_mut(name).and_then(|s| s.pointer_mut("/properties/streets")) {
                let nullable = name == "UpdateCenterRequest";
                let ty =
                    if nullable { serde_json::json!(["array", "null"]) } else { serde_json::json!("array") };
                *streets =
                    serde_json::json!({ "type": ty, "maxItems": shared::api::MAX_STREETS, "items": street });
            }
        }
        // Opening hours (`calendar::check_opening_hours`).
        let hhmm =
            serde_json::json!({ "type": "string", "pattern": "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$" });
        if let Some(props) = schemas.get_mut("WeekdayHours").and_then(|s| s.get_mut("properties")) {
            props["weekdays"] = serde_json::json!({ "type": "array", "minItems": 1, "maxItems": 7,
                "items": { "type": "integer", "minimum": 1, "maximum": 7 },
                "description": "ISO weekdays, 1 = Monday … 7 = Sunday." });
            props["open"] = hhmm.clone();
            props["close"] = hhmm;
        }
        if let Some(props) = schemas.get_mut("OpeningHours").and_then(|s| s.get_mut("properties")) {
            if let Some(w) = props.get_mut("weekly").and_then(|w| w.as_object_mut()) {
                w.insert("maxItems".into(), 14.into());
            }
            if let Some(c) = props.get_mut("closures").and_then(|c| c.as_object_mut()) {
                c.insert("maxItems".into(), 50.into());
            }
        }
        // A person's name (`shared::validate::PersonName`): no control characters, none of the
        // invisible or direction-changing ones (ZWNJ/ZWJ included), not blank.
        if let Some(name) = schemas.get_mut("PersonName").and_then(|s| s.as_object_mut()) {
            name.insert("pattern".into(), PERSON_NAME_PATTERN.into());
        }
        // Accounts are created and changed with a person's role; terminals enroll instead
        // (`accounts::check_point_binding`).
        let account_roles = ["admin", "supervisor", "operator", "staff"];
        if let Some(role) =
            schemas.get_mut("CreateUserRequest").and_then(|s| s.pointer_mut("/properties/role"))
        {
            *role = serde_json::json!({ "type": "string", "enum": account_roles });
        }
        if let Some(role) =
            schemas.get_mut("UpdateUserRequest").and_then(|s| s.pointer_mut("/properties/role"))
        {
            let mut values: Vec<serde_json::Value> = account_roles.iter().map(|r| (*r).into()).collect();
            values.push(serde_json::Value::Null);
            *role = serde_json::json!({ "type": ["string", "null"], "enum": values });
        }
        // Problems (`cases::problems::create`): only inspections and spot checks record one;
        // 1–7 days, up to 92 for a complex problem, which needs its reason.
        if let Some(p) = schemas.get_mut("CreateProblemRequest").and_then(|s| s.as_object_mut()) {
            if let Some(props) = p.get_mut("properties") {
                props["source"] = serde_json::json!({ "type": "string", "enum": ["inspection", "spot_check"],
                    "description": "`inspection` or `spot_check`." });
                if let Some(days) = props.get_mut("days").and_then(|d| d.as_object_mut()) {
                    days.insert("minimum".into(), 1.into());
                    days.insert("maximum".into(), 92.into());
                }
            }
            // "More than 7 days needs a reason" as two alternatives (fuzzers generate from
            // `anyOf`; they pass over `if`/`then`).
            p.insert(
                "anyOf".into(),
                serde_json::json!([
                    { "properties": { "days": { "type": ["integer", "null"], "maximum": 7 } } },
                    { "required": ["days", "complex_reason"],
                      "properties": { "complex_reason": { "type": "string" } } }
                ]),
            );
        }
        // Days (`calendar::parse_date`): a real date of the years the calendar knows.
        if let Some(starts) =
            schemas.get_mut("InspectionScheduleRequest").and_then(|s| s.pointer_mut("/properties/starts_on"))
        {
            starts["pattern"] = DATE_PATTERN.into();
            starts["format"] = "date".into();
        }
    }
    // An inspection photo is served as it was taken: JPEG or PNG (`inspections::add_photo`).
    if let Some(ok) = v.pointer_mut("/paths/~1api~1v1~1inspection-photos~1{id}/get/responses/200") {
        ok["content"] = serde_json::json!({ "image/jpeg": {}, "image/png": {} });
    }
    if let Some(params) =
        v.pointer_mut("/paths/~1api~1v1~1appointments/get/parameters").and_then(|p| p.as_array_mut())
    {
        for p in params.iter_mut().filter(|p| p["name"] == "date") {
            p["schema"]["pattern"] = DATE_PATTERN.into();
            p["schema"]["format"] = "date".into();
        }
    }
    v
}

/// Refuses over-long request targets before any handler parses them.
async fn limit_uri(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "请求地址过长 (request target too long)",
        )
        .into_response();
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::not_found("资源")
}

/// Content-Security-Policy of the console: nothing from other origins, no inline script.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self'; connect-src 'self'; \
    worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The browser console (`console_dir`) as the router's fallback: files as they are, SPA routes
/// (no extension) get `index.html`; the API's own prefixes keep their JSON 404.
async fn console(dir: std::path::PathBuf, req: Request) -> Response {
    use tower::ServiceExt;
    let path = req.uri().path().to_owned();
    let reserved = ["/api/", "/ws/", "/.well-known/"].iter().any(|p| path.starts_with(p))
        || ["/api", "/ws", "/healthz", "/readyz", "/metrics"].contains(&path.as_str());
    if reserved || !matches!(*req.method(), Method::GET | Method::HEAD) || !dir.is_dir() {
        return not_found().await.into_response();
    }
    let is_route = !path.rsplit('/').next().unwrap_or_default().contains('.');
    let res = if is_route {
        tower_http::services::ServeFile::new(dir.join("index.html")).oneshot(req).await
    } else {
        tower_http::services::ServeDir::new(&dir).oneshot(req).await
    };
    let Ok(res) = res;
    if res.status() == StatusCode::NOT_FOUND {
        return not_found().await.into_response();
    }
    let mut res = res.into_response();
    let cache = if path.starts_with("/assets/") {
        // Content-hashed file names: a changed file gets a new name.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONSOLE_CSP));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

pub fn router(state: AppState) -> Router {
    let (router, doc) = api_router().split_for_parts();
    let doc_json = serde_json::to_string_pretty(&finish(doc)).unwrap_or_default();
    let console_dir = state.config.console_dir.clone();
    let mut app = router
        .route("/ws", axum::routing::get(crate::ws::handler))
        .route("/metrics", axum::routing::get(crate::metrics::scrape))
        .route(
            "/api/protocol.schema.json",
            axum::routing::get(|| async { axum::Json(shared::protocol::json_schema()) }),
        )
        .route(
            "/api/openapi.json",
            axum::routing::get(
                move || async move { ([(header::CONTENT_TYPE, "application/json")], doc_json) },
            ),
        )
        .fallback(move |req: Request| console(console_dir.clone(), req))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn(limit_uri))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: query strings may carry search terms.
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }));
    if !state.config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> =
            state.config.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    app.with_state(state)
}
