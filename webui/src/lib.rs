//! Shared pieces of Alluvium's web UIs, used by the master's and the worker's HTTP servers.
//!
//! Pages are rendered on the server with [maud] (templates are Rust code, compiled into the
//! binary) and carry their own stylesheet: no external assets, no JavaScript, so the UI works in
//! an air-gapped cluster. Charts are inline SVG drawn here. Every page has a JSON twin under
//! `/api/v1/`; the HTML handler and the JSON handler call the same data-gathering function, and
//! [`reply`] turns the result into either.

pub mod chart;
pub mod format;
pub mod layout;
pub mod reply;
pub mod ring;

pub use maud::Markup;
