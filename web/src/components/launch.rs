//! The launch command under a result: the command line (or Python settings) that runs what was
//! estimated, in its runtime, with the settings that produced the estimate (core's
//! `headroom_core::launch`, the same text `headroom fit` prints).

use headroom_core::launch::LaunchCommand;
use leptos::prelude::*;

/// The launch command, or nothing when the answer does not fit (there is nothing to launch).
#[component]
pub fn LaunchView(
    /// The answer's launch command; `None` when it does not fit.
    launch: Option<LaunchCommand>,
) -> impl IntoView {
    launch.map(|l| {
        let notes = l
            .notes
            .iter()
            .map(|n| view! { <p class="note">{n.clone()}</p> })
            .collect_view();
        view! {
            <div id="launch">
                <h3>"Launch (" {l.runtime.clone()} ")"</h3>
                <pre><code id="launch-command">{l.command.clone()}</code></pre>
                {notes}
            </div>
        }
    })
}
