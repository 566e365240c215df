//! # headroom-web
//!
//! headroom's static site, a Leptos client-side app built with trunk. Everything runs in the
//! browser; nothing is uploaded.
//!
//! * [`app`] — the shell: navigation and the page chosen by the URL's `page` parameter.
//! * [`pages`] — Calculator, What can I run?, Reports and Benchmark.
//! * [`components::charts`] — the SVG charts (stacked memory bar, bar charts, sweep curve).
//! * [`url_state`] — every setting as URL query parameters, so a result is a shareable link.
//! * [`model_files`] — reads `.gguf` and `.safetensors` headers from dropped files for core's
//!   parsers (only the header bytes are read).
//! * [`catalog`] — the one place the site calls into `headroom-core`'s catalogs and estimate.
//! * [`browser`] — thin wrappers over the browser APIs (files, fetch, history, clock).
#![deny(missing_docs)]

pub mod app;
pub mod browser;
pub mod catalog;
pub mod components;
pub mod format;
pub mod gpu;
pub mod model_files;
pub mod pages;
pub mod url_state;

/// Mount the app on `<body>` (called by `main`).
pub fn mount() {
    leptos::mount::mount_to_body(app::App);
}
