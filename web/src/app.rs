//! The shell: header, navigation, and the page named by the URL's `page` parameter.

use leptos::prelude::*;

use crate::{
    browser,
    nav::{Navigation, Page},
    pages::{
        benchmark::BenchmarkPage, calculator::CalculatorPage, can_run::CanRunPage,
        reports::ReportsPage,
    },
    url_state::Query,
};

/// The whole site.
#[component]
pub fn App() -> impl IntoView {
    let start = Page::from_query(&Query::parse(&browser::location_search()));
    let nav = Navigation {
        page: RwSignal::new(start),
        generation: RwSignal::new(0),
    };
    provide_context(nav);
    let links = Page::ALL
        .into_iter()
        .map(|p| {
            let href = format!("?page={}", p.slug());
            view! {
                <a
                    href=href
                    id=format!("nav-{}", p.slug())
                    class:active=move || nav.page.get() == p
                    on:click=move |ev| {
                        ev.prevent_default();
                        nav.navigate(p, Query::new());
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
            <nav>{links}</nav>
        </header>
        <main>
            {move || {
                // Re-mount the page on every navigation so it reads its state from the URL.
                let _ = nav.generation.get();
                match nav.page.get() {
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
