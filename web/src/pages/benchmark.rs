//! Benchmark: the probe's kernels through WebGPU in this browser.

use leptos::{prelude::*, task::spawn_local};

use crate::gpu;

/// The benchmark page.
#[component]
pub fn BenchmarkPage() -> impl IntoView {
    let status = RwSignal::new(String::from("checking for WebGPU…"));
    let ok = RwSignal::new(None::<bool>);
    spawn_local(async move {
        match gpu::acquire().await {
            Ok(ctx) => {
                status.set(format!("WebGPU adapter: {}", ctx.info.display_name()));
                ok.set(Some(true));
            }
            Err(e) => {
                status.set(e.to_string());
                ok.set(Some(false));
            }
        }
    });
    view! {
        <section id="benchmark">
            <h1>"Benchmark"</h1>
            <p id="webgpu-status" class:error=move || ok.get() == Some(false) data-ready=move || ok.get().map(|b| b.to_string())>
                {move || status.get()}
            </p>
        </section>
    }
}
