//! The model-size allocation stage: hold fp16 "parameters" in growing steps (1B, 2B, … parameters), in
//! buffers no larger than one storage binding, each filled with the pattern and checked word for
//! word, each step timed. It stops at the first error, before passing the budget, at the stage's
//! time limit, or at the swap knee: a step whose seconds per GB jump far above the earlier steps
//! (a published allocation sweep on a 16 GB M2 went from 16 s at 11B parameters to 278 s at 13B as the
//! machine began to swap).

use headroom_core::report::{AllocationResult, AllocationStep, AllocationStopReason};

use crate::ProbeError;
use crate::gpu::{Gpu, now_s, scoped};
use crate::kernels::fill::{Fill, Filler};
use crate::kernels::{BINDING_ALIGN_BYTES, GB, GIB};
use crate::pattern::piece_seed;

/// Bytes per fp16 parameter.
pub const BYTES_PER_PARAM: u64 = 2;
/// A step slower per GB than this many times the median of the earlier steps is the swap knee.
pub const DEFAULT_SWAP_FACTOR: f64 = 4.0;
/// Steps shorter than this are never called a knee (timer noise on small steps).
const MIN_KNEE_STEP_S: f64 = 0.25;
/// Earlier steps needed before a knee can be called.
const MIN_STEPS_BEFORE_KNEE: usize = 2;
/// Largest buffer the stage allocates (1 GiB: under every adapter's binding limit).
const MAX_CHUNK_BYTES: u64 = GIB;

/// Inputs to the allocation stage.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationParams {
    /// Parameters added per step (1e9 in the full probe).
    pub step_params: u64,
    /// Never hold more than this many bytes, if set.
    pub budget_bytes: Option<u64>,
    /// Knee factor (see [`DEFAULT_SWAP_FACTOR`]).
    pub swap_factor: f64,
    /// Keep going past the knee (still recorded).
    pub allow_swap: bool,
    /// Stop after this many seconds.
    pub time_limit_s: f64,
    /// Seed of the pattern.
    pub seed: u32,
    /// Test hook: holding more than this many bytes fails as if out of memory
    /// (`HEADROOM_PROBE_SIMULATE_OOM_BYTES`).
    pub simulate_oom_above_bytes: Option<u64>,
}

/// Runs the allocation stage, calling `on_step` with the result so far after every step (a
/// front end saves it: the OOM killer may end the process during the next one). Errors only if
/// the fill kernels cannot be built; allocation failures end the stage and are recorded in it.
pub async fn run(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    p: &AllocationParams,
    on_step: &mut dyn FnMut(&AllocationResult),
) -> Result<AllocationResult, ProbeError> {
    let gpu = Gpu::new(device, queue);
    let filler = Filler::new(&gpu).await?;
    let chunk_bytes = MAX_CHUNK_BYTES
        .min(gpu.limits.max_storage_buffer_binding_size)
        .min(gpu.limits.max_buffer_size)
        / BINDING_ALIGN_BYTES
        * BINDING_ALIGN_BYTES;
    let mut result = AllocationResult {
        step_params: p.step_params,
        bytes_per_param: BYTES_PER_PARAM,
        chunk_bytes,
        budget_bytes: p.budget_bytes,
        swap_factor: p.swap_factor,
        steps: Vec::new(),
        stop_reason: AllocationStopReason::NothingToAllocate,
        stop_detail: String::new(),
        largest_clean_params: 0,
        largest_clean_bytes: 0,
    };
    if chunk_bytes == 0 || p.step_params == 0 {
        result.stop_detail =
            "the adapter's buffer limits (or a zero step) leave nothing to allocate".to_owned();
        return Ok(result);
    }
    let start = now_s();
    let mut held: Vec<wgpu::Buffer> = Vec::new();
    let mut total = 0u64;
    let mut knee_seen = false;
    let mut chunk_index = 0u32;
    for step in 1u64.. {
        let params = step * p.step_params;
        let target = params * BYTES_PER_PARAM;
        if let Some(budget) = p.budget_bytes
            && target > budget
        {
            result.stop_reason = AllocationStopReason::Budget;
            result.stop_detail = format!(
                "the next step ({params} parameters, {target} bytes) would pass the budget of {budget} bytes"
            );
            break;
        }
        if now_s() - start > p.time_limit_s {
            result.stop_reason = AllocationStopReason::TimeLimit;
            result.stop_detail = format!(
                "the stage's time limit of {:.0} s was reached",
                p.time_limit_s
            );
            break;
        }
        let step_start = now_s();
        let added = target - total;
        let mut error = None;
        while total < target {
            let size = chunk_bytes.min(target - total).div_ceil(16) * 16;
            if p.simulate_oom_above_bytes
                .is_some_and(|limit| total + size > limit)
            {
                error = Some(format!(
                    "out of memory (simulated by HEADROOM_PROBE_SIMULATE_OOM_BYTES) at {} bytes",
                    total + size
                ));
                break;
            }
            let seed = piece_seed(p.seed, chunk_index);
            let outcome = scoped(&gpu, "allocation step", async {
                let buffer = gpu.storage("allocated parameters", size);
                filler.fill(&gpu, &buffer, 0, size, seed, Fill::Halves);
                let bad = filler
                    .check(&gpu, &buffer, 0, size, seed, Fill::Halves)
                    .await?;
                Ok((buffer, bad))
            })
            .await;
            match outcome {
                Ok((buffer, 0)) => {
                    held.push(buffer);
                    total += size;
                    chunk_index += 1;
                }
                Ok((_, bad)) => {
                    error = Some(format!(
                        "{bad} of {} 16-byte words read back wrong in a {size}-byte buffer",
                        size / 16
                    ));
                    break;
                }
                Err(err) => {
                    error = Some(err.to_string());
                    break;
                }
            }
        }
        let step_s = now_s() - step_start;
        let s_per_gb = step_s / (added as f64 / GB);
        let ok = error.is_none();
        result.steps.push(AllocationStep {
            params,
            total_bytes: total,
            step_s,
            s_per_gb,
            ok,
            error: error.clone(),
        });
        on_step(&result);
        if let Some(err) = error {
            result.stop_reason = AllocationStopReason::Error;
            result.stop_detail = format!("step to {params} parameters failed: {err}");
            break;
        }
        let earlier: Vec<f64> = result.steps[..result.steps.len() - 1]
            .iter()
            .filter(|s| s.ok)
            .map(|s| s.s_per_gb)
            .collect();
        let knee = earlier.len() >= MIN_STEPS_BEFORE_KNEE && step_s >= MIN_KNEE_STEP_S && {
            let median = median(&earlier);
            s_per_gb > p.swap_factor * median
        };
        if knee && !knee_seen {
            knee_seen = true;
            let detail = format!(
                "step to {params} parameters took {s_per_gb:.3} s/GB, over {} x the median {:.3} s/GB of the earlier steps: the host is swapping",
                p.swap_factor,
                median(&earlier)
            );
            if !p.allow_swap {
                result.stop_reason = AllocationStopReason::Swapping;
                result.stop_detail = detail;
                break;
            }
            result.stop_detail = format!("{detail} (continued: --allow-swap)");
        }
        if !knee_seen {
            result.largest_clean_params = params;
            result.largest_clean_bytes = total;
        }
    }
    drop(held);
    gpu.wait()?;
    Ok(result)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}
