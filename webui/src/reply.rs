//! Responses: HTML pages, JSON documents, and errors in either form.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Serialize;

use crate::layout::{page, Nav, PageOptions};

/// An HTML page (no caching: every view is live data).
pub fn html_page(markup: Markup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// A JSON document.
pub fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            &format!("cannot encode the response: {e}"),
        ),
    }
}

/// An error as JSON: `{"error": {"code": "NOT_FOUND", "message": "..."}}`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An error as a page of the UI.
pub fn html_error(nav: &Nav, active: &str, status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        div.panel.error {
            p { strong { (status.as_u16()) " " (title) } }
            p { (message) }
            p { a href=(active) { "Back" } }
        }
    };
    let mut r = html_page(page(nav, active, title, PageOptions::default(), body));
    *r.status_mut() = status;
    r
}
