//! `GET /ui`: the operator's dashboard, a single-page app of plain HTML,
//! CSS and JS compiled into the binary with `include_str!` (no build step,
//! nothing fetched from elsewhere). The page reads the same JSON API as any
//! client (`/sagas`, `/sagas/{id}`, `/sagas/{id}/state`) and sends operator
//! verbs with the bearer token the operator types in; it has no privileges
//! of its own. A strict Content-Security-Policy keeps it to this origin.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const STYLE_CSS: &str = include_str!("ui/style.css");

/// Only this origin, no inline scripts, no frames: data shown by the page can
/// never run as code even if an escape were missed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's three files; they need no state, so they merge into any router.
pub(super) fn routes<T: Clone + Send + Sync + 'static>() -> Router<T> {
    Router::new()
        .route("/ui", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Embedded in the binary: a new binary may bring new files.
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
