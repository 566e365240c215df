//! # headroom-web
//!
//! headroom's static site, a Leptos client-side app built with trunk. Everything runs in the
//! browser; nothing is uploaded.
//!
//! * [`app`] — the shell: header and the page chosen by the URL's `page` parameter.
//! * [`nav`] — which page is shown and how to go to another (pages and components use it, never
//!   the shell).
//! * [`pages`] — Calculator, What can I run?, Reports and Benchmark.
//! * [`components::charts`] — the SVG charts (stacked memory bar, bar charts, sweep curve).
//! * [`url_state`] — every setting as URL query parameters, so a result is a shareable link.
//! * [`model_files`] — reads `.gguf` and `.safetensors` headers from dropped files for core's
//!   parsers (only the header bytes are read).
//! * [`catalog`] — the one place the site calls into `headroom-core`'s catalogs and estimate.
//! * [`search`] — forgiving search over catalog models and devices.
//! * [`error`] — [`error::WebError`], every failure worded with the site's control names.
//! * [`browser`] — thin wrappers over the browser APIs (files, fetch, history, clock, storage).
#![deny(missing_docs)]

pub mod app;
pub mod browser;
pub mod catalog;
pub mod components;
pub mod error;
pub mod format;
pub mod gpu;
pub mod model_files;
pub mod nav;
pub mod pages;
pub mod search;
pub mod url_state;

/// Mount the app on `<body>` (called by `main`), replacing the static loading message of
/// `index.html`.
pub fn mount() {
    if let Some(loading) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("loading"))
    {
        loading.remove();
    }
    leptos::mount::mount_to_body(app::App);
}
