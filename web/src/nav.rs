//! Which page is shown and how to go to another: the pages and components ask for
//! [`Navigation`] from context instead of reaching into the app shell.

use headroom_core::devices::DeviceSpec;
use leptos::prelude::*;

use crate::{browser, url_state::Query};

/// The pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Model × device → verdict.
    Calculator,
    /// Device → every catalog model that fits, ranked.
    CanRun,
    /// Probe reports: charts and devices.
    Reports,
    /// WebGPU kernels in this browser.
    Benchmark,
}

impl Page {
    /// The `page` query value.
    pub fn slug(self) -> &'static str {
        match self {
            Page::Calculator => "calculator",
            Page::CanRun => "canrun",
            Page::Reports => "reports",
            Page::Benchmark => "benchmark",
        }
    }

    /// Navigation label.
    pub fn title(self) -> &'static str {
        match self {
            Page::Calculator => "Calculator",
            Page::CanRun => "What can I run?",
            Page::Reports => "Reports",
            Page::Benchmark => "Benchmark",
        }
    }

    /// The page a query names (Calculator by default).
    pub fn from_query(query: &Query) -> Page {
        match query.get("page") {
            Some("canrun") => Page::CanRun,
            Some("reports") => Page::Reports,
            Some("benchmark") => Page::Benchmark,
            _ => Page::Calculator,
        }
    }

    /// Every page in navigation order.
    pub const ALL: [Page; 4] = [
        Page::Calculator,
        Page::CanRun,
        Page::Reports,
        Page::Benchmark,
    ];
}

/// The shown page, shared through context.
#[derive(Clone, Copy)]
pub struct Navigation {
    /// The page shown.
    pub page: RwSignal<Page>,
    /// Bumped on every navigation so a page re-reads its settings from the URL.
    pub generation: RwSignal<u64>,
}

/// `localStorage` key of this browser's measured device (a [`DeviceSpec`] as JSON): the
/// calculator's first screen uses it when a link names no device.
pub const MY_DEVICE_KEY: &str = "headroom.my-device";

impl Navigation {
    /// Go to `page` with `query` as the URL (a new history entry).
    pub fn navigate(&self, page: Page, mut query: Query) {
        query.set("page", page.slug());
        browser::push_search(&query.to_search());
        self.generation.update(|g| *g += 1);
        self.page.set(page);
    }

    /// Go to "What can I run?" with `device` (a measured one) selected.
    pub fn show_what_it_runs(&self, device: &DeviceSpec) {
        let mut q = Query::new();
        q.set("devspec", serde_json::to_string(device).unwrap_or_default());
        self.navigate(Page::CanRun, q);
    }

    /// Go to the calculator with `device` (a measured one) selected, keeping the model and its
    /// settings of the current link; the device is remembered as this browser's.
    pub fn use_device_in_calculator(&self, device: &DeviceSpec) {
        let q = Query::parse(&browser::location_search());
        let mut fresh = Query::new();
        for key in [
            "model", "hf", "cfg", "name", "spec", "size", "format", "ctx", "mode",
        ] {
            if let Some(v) = q.get(key) {
                fresh.set(key, v.to_string());
            }
        }
        let json = serde_json::to_string(device).unwrap_or_default();
        remember_device(device);
        fresh.set("devspec", json);
        self.navigate(Page::Calculator, fresh);
    }
}

/// Remember `device` as this browser's for the calculator's first screen, when it knows its
/// memory (a WebGPU adapter does not say how much it has: such a device would not fit anything).
pub fn remember_device(device: &DeviceSpec) {
    if device.memory_bytes > 0
        && let Ok(json) = serde_json::to_string(device)
    {
        browser::storage_set(MY_DEVICE_KEY, &json);
    }
}
