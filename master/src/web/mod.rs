//! The master's web UI and its JSON REST API (read-only).
//!
//! Each page has one data-gathering function returning a serializable value; the HTML handler
//! renders it and the JSON handler (`/api/v1/...`) returns it as is, so the UI and scripts read
//! the same data:
//!
//! | page | HTML | JSON |
//! |---|---|---|
//! | Overview | `/` | `/api/v1/master` |
//! | Browse | `/browse?path=&after=&limit=` | `/api/v1/browse?path=&after=&limit=` |
//! | Workers | `/workers` | `/api/v1/workers` |
//! | Mounts | `/mounts` | `/api/v1/mounts` |
//! | Metrics | `/stats` | `/api/v1/metrics` |
//!
//! The UI reads the namespace as an unprivileged user ([`WEB_USER`], no groups): it shows what
//! any user may read, never more, and never a secret (mount options are redacted, URIs lose
//! their credentials).

mod browse;
mod mounts;
mod overview;
mod preview;
mod sampler;
mod stats;
mod workers;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use alluvium_common::identity::Caller;
use alluvium_common::{Config, Error, ErrorCode};
use alluvium_webui::layout::Nav;
use alluvium_webui::reply;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::server::Shared;

pub(crate) use sampler::Sampler;

/// The identity the UI reads the namespace with: permissions apply as to any other user.
pub const WEB_USER: &str = "alluvium-web";

pub(crate) const NAV: Nav = Nav {
    brand: "Alluvium",
    links: &[
        ("/", "Overview"),
        ("/browse", "Browse"),
        ("/workers", "Workers"),
        ("/mounts", "Mounts"),
        ("/stats", "Metrics"),
    ],
};

/// State of the web handlers.
pub(crate) struct Web {
    pub shared: Arc<Shared>,
    pub sampler: Arc<Sampler>,
    /// The cluster secret, for reading file previews from workers.
    pub cluster_secret: Option<String>,
}

impl Web {
    /// The caller the UI acts as.
    pub fn caller() -> Caller {
        Caller {
            user: WEB_USER.to_string(),
            groups: Vec::new(),
        }
    }
}

/// The UI and REST routes, and the metrics sampler task (stops when `stop` changes).
pub(crate) fn start(
    shared: Arc<Shared>,
    config: &Config,
    stop: watch::Receiver<bool>,
) -> (Router, JoinHandle<()>) {
    let sampler = Arc::new(Sampler::new(shared.clone()));
    let task = tokio::spawn(sampler.clone().run(stop));
    let web = Arc::new(Web {
        shared,
        sampler,
        cluster_secret: Some(config.security.cluster_secret.clone()).filter(|s| !s.is_empty()),
    });
    (router(web), task)
}

pub(crate) fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(overview::html))
        .route("/api/v1/master", get(overview::json))
        .route("/browse", get(browse::html))
        .route("/api/v1/browse", get(browse::json))
        .route("/workers", get(workers::html))
        .route("/api/v1/workers", get(workers::json))
        .route("/mounts", get(mounts::html))
        .route("/api/v1/mounts", get(mounts::json))
        .route("/stats", get(stats::html))
        .route("/api/v1/metrics", get(stats::json))
        .fallback(not_found)
        .with_state(web)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let msg = format!("{} is not a page of this server", uri.path());
    if uri.path().starts_with("/api/") {
        reply::json_error(StatusCode::NOT_FOUND, "NOT_FOUND", &msg)
    } else {
        reply::html_error(&NAV, "/", StatusCode::NOT_FOUND, &msg)
    }
}

fn status_of(e: &Error) -> StatusCode {
    match e.code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error of a JSON endpoint, with the error's stable code.
pub(crate) fn json_error(e: &Error) -> Response {
    reply::json_error(status_of(e), e.code.as_str(), &e.message)
}

/// An error of a page.
pub(crate) fn html_error(active: &str, e: &Error) -> Response {
    reply::html_error(&NAV, active, status_of(e), &e.message)
}
