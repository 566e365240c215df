//! How many users a server holds at the context, and how fast they decode (core's
//! `headroom_core::serving`, the section `headroom fit` prints for a serving runtime or `--users`).

use headroom_core::serving::{Serving, UsersSpeed};
use leptos::prelude::*;

use crate::format;

fn speed(s: &UsersSpeed) -> String {
    format!(
        "{} users: {} per user, {} together{}",
        format::count(s.users),
        format::tokens_per_s(s.per_user_tokens_per_s),
        format::tokens_per_s(s.aggregate_tokens_per_s),
        if s.compute_bound {
            " (compute-bound)"
        } else {
            ""
        }
    )
}

/// The serving section, or nothing when the runtime does not serve and no users were asked.
#[component]
pub fn ServingView(
    /// The answer's serving section.
    serving: Option<Serving>,
) -> impl IntoView {
    serving.map(|s| {
        let at_max = s
            .at_max_users
            .as_ref()
            .map(|m| view! { <li id="serving-at-max">{speed(m)}</li> });
        view! {
            <div id="serving">
                <h3>"Serving (" {s.engine.clone()} ")"</h3>
                <p id="serving-max-users">
                    <strong>{format::count(s.max_users)}</strong>
                    " users fit at " {format::count(s.context)} " tokens each ("
                    {s.limited_by.clone()} ")"
                </p>
                <ul>
                    <li id="serving-at-users">{speed(&s.at_users)}</li>
                    {at_max}
                </ul>
                <p class="note"><code>{s.engine_settings.clone()}</code></p>
            </div>
        }
    })
}
