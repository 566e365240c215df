//! Reports: dropped probe reports as charts.

use leptos::prelude::*;

/// The reports page.
#[component]
pub fn ReportsPage() -> impl IntoView {
    view! { <section id="reports"><h1>"Reports"</h1></section> }
}
