//! The shell: header, navigation, and the page named by the URL's `page` parameter.

use leptos::prelude::*;

use crate::{
    browser,
    pages::{
        benchmark::BenchmarkPage, calculator::CalculatorPage, can_run::CanRunPage,
        reports::ReportsPage,
    },
    url_state::Query,
};

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

/// App-wide state shared through context.
#[derive(Clone, Copy)]
pub struct AppState {
    /// The page shown.
    pub page: RwSignal<Page>,
    /// Bumped on every navigation so a page re-reads its settings from the URL.
    pub nav_generation: RwSignal<u64>,
}

impl AppState {
    /// Go to `page` with `query` as the URL (a new history entry).
    pub fn navigate(&self, page: Page, mut query: Query) {
        query.set("page", page.slug());
        browser::push_search(&query.to_search());
        self.nav_generation.update(|g| *g += 1);
        self.page.set(page);
    }
}

/// The whole site.
#[component]
pub fn App() -> impl IntoView {
    let start = Page::from_query(&Query::parse(&browser::location_search()));
    let state = AppState {
        page: RwSignal::new(start),
        nav_generation: RwSignal::new(0),
    };
    provide_context(state);
    let nav = Page::ALL
        .into_iter()
        .map(|p| {
            let href = format!("?page={}", p.slug());
            view! {
                <a
                    href=href
                    id=format!("nav-{}", p.slug())
                    class:active=move || state.page.get() == p
                    on:click=move |ev| {
                        ev.prevent_default();
                        state.navigate(p, Query::new());
                    }
                >
                    {p.title()}
                </a>
            }
        })
        .collect_view();
    view! {
        <header class="site-header">
            <div class="brand">
                <strong>"headroom"</strong>
                <span class="tagline">"can this machine hold this model, and how fast will it run?"</span>
            </div>
            <nav>{nav}</nav>
        </header>
        <main>
            {move || {
                // Re-mount the page on every navigation so it reads its state from the URL.
                let _ = state.nav_generation.get();
                match state.page.get() {
                    Page::Calculator => view! { <CalculatorPage /> }.into_any(),
                    Page::CanRun => view! { <CanRunPage /> }.into_any(),
                    Page::Reports => view! { <ReportsPage /> }.into_any(),
                    Page::Benchmark => view! { <BenchmarkPage /> }.into_any(),
                }
            }}
        </main>
        <footer>
            "Everything runs in this browser; nothing is uploaded. Estimates state their assumptions."
        </footer>
    }
}
