//! Calculator: model × settings × device → verdict.

use leptos::prelude::*;

/// The calculator page.
#[component]
pub fn CalculatorPage() -> impl IntoView {
    view! { <section id="calculator"><h1>"Calculator"</h1></section> }
}
