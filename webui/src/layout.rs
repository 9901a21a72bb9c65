//! The page shell: head with the inline stylesheet, a navigation bar, the content.

use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The stylesheet, inlined into every page (the UI must work without fetching anything).
pub const STYLE: &str = include_str!("style.css");

/// The navigation bar of one UI (master or worker).
pub struct Nav {
    /// Shown at the left of the bar, e.g. "Alluvium master".
    pub brand: &'static str,
    /// (href, label) of each page.
    pub links: &'static [(&'static str, &'static str)],
}

/// Options of one page.
#[derive(Default)]
pub struct PageOptions {
    /// Reload the page every this many seconds (live pages such as metrics); 0 = never.
    pub refresh_secs: u32,
}

/// A whole HTML page: `active` is the href of the current page in the navigation bar.
pub fn page(nav: &Nav, active: &str, title: &str, opts: PageOptions, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if opts.refresh_secs > 0 {
                    meta http-equiv="refresh" content=(opts.refresh_secs);
                }
                title { (title) " · " (nav.brand) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header.topbar {
                    nav {
                        a.brand href="/" { (nav.brand) }
                        ul {
                            @for (href, label) in nav.links {
                                li {
                                    @if *href == active {
                                        a.active href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer {
                    "Alluvium · read-only view · every page has a JSON twin under "
                    code { "/api/v1/" }
                }
            }
        }
    }
}

/// A small "label: value" card for summary rows.
pub fn stat(label: &str, value: Markup) -> Markup {
    html! {
        div.stat {
            div.stat-label { (label) }
            div.stat-value { (value) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_nav_title_and_escapes() {
        let nav = Nav {
            brand: "Test",
            links: &[("/", "Home"), ("/b", "Browse")],
        };
        let p = page(
            &nav,
            "/b",
            "<title>",
            PageOptions::default(),
            html! { p { "x" } },
        )
        .into_string();
        assert!(p.starts_with("<!DOCTYPE html>"));
        assert!(p.contains("&lt;title&gt;"));
        assert!(p.contains(r#"<a class="active" href="/b" aria-current="page">Browse</a>"#));
        assert!(p.contains("<style>"));
        assert!(!p.contains("http-equiv"));
    }
}
