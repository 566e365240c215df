//! The model-size allocation stage: hold fp16 "parameters" in growing steps (1B, 2B, … parameters), in
//! buffers no larger than one storage binding, each filled with the pattern and checked word for
//! word, each step timed. It stops at the first error, before passing the budget, at the stage's
//! time limit, or at the swap knee (a published allocation sweep on a 16 GB M2 went from 16 s at
//! 11B parameters to 278 s at 13B as the machine began to swap).
//!
//! What decides the knee: a step is *slow* when its seconds per GB pass `swap_factor` times the
//! median of the earlier ordinary steps. Timing alone cannot tell swapping from a busy CPU or GPU
//! (on lavapipe a step took 11.4 s/GB against a 2.0 s/GB median while a compiler ran), so where
//! the OS counts swapping ([`crate::swap`]: Linux `/proc/vmstat`, macOS `vm_stat`) a slow step is
//! the knee only if the host swapped pages out during it; a slow step without swap-outs is noted
//! ("contention, not swapping") and the stage goes on, and on Linux with no swap configured there
//! is no knee at all. Where the OS gives no counters (the browser, Windows) a slow step is only a
//! suspect: the knee needs the next step to be slow too, since contention comes and goes while
//! swapping, once begun, slows every further step.

use headroom_core::report::{AllocationResult, AllocationStep, AllocationStopReason};

use crate::ProbeError;
use crate::gpu::{Gpu, now_s, scoped};
use crate::kernels::fill::{Fill, Filler};
use crate::kernels::{BINDING_ALIGN_BYTES, GB, GIB};
use crate::pattern::piece_seed;
use crate::swap::{SwapCounters, SwapSample};

/// Bytes per fp16 parameter.
pub const BYTES_PER_PARAM: u64 = 2;
/// A step slower per GB than this many times the median of the earlier steps is slow (the swap
/// knee if the host swapped during it, see the module docs).
pub const DEFAULT_SWAP_FACTOR: f64 = 4.0;
/// Seconds the test hook [`AllocationParams::simulate_slow_steps`] adds to a step's timing: far
/// above any step of the tests' small sizes, so the step is slow on every machine.
pub const SIMULATED_SLOW_STEP_S: f64 = 10.0;
/// Steps shorter than this are never called slow (timer noise on small steps).
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
    /// Test hook: these steps (1 for the first) are timed [`SIMULATED_SLOW_STEP_S`] longer than
    /// they took, as if the host had slowed them (`HEADROOM_PROBE_SIMULATE_SLOW_STEPS`).
    pub simulate_slow_steps: Vec<u32>,
}

/// Runs the allocation stage, reading the host's swap activity from `counters` before and after
/// every step ([`crate::swap::host_counters`] natively, [`crate::swap::NoSwapCounters`] in a
/// browser), and calling `on_step` with the result so far after every step (a front end saves
/// it: the OOM killer may end the process during the next one). Errors only if the fill kernels
/// cannot be built; allocation failures end the stage and are recorded in it.
pub async fn run(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    p: &AllocationParams,
    counters: &mut dyn SwapCounters,
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
        swap_counters: counters.source(),
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
    let mut judge = KneeJudge::new(p.swap_factor);
    // Slow steps that were not the knee, for the stop detail.
    let mut passed_over = 0usize;
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
        let before = counters.sample();
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
        let mut step_s = now_s() - step_start;
        let after = counters.sample();
        if p.simulate_slow_steps
            .contains(&(result.steps.len() as u32 + 1))
        {
            step_s += SIMULATED_SLOW_STEP_S;
        }
        let s_per_gb = step_s / (added as f64 / GB);
        let swap = StepSwap::between(before, after);
        let ok = error.is_none();
        result.steps.push(AllocationStep {
            params,
            total_bytes: total,
            step_s,
            s_per_gb,
            ok,
            error: error.clone(),
            pages_swapped_out: swap.pages_out(),
            pages_swapped_in: swap.pages_in(),
            note: None,
        });
        if let Some(err) = error {
            on_step(&result);
            result.stop_reason = AllocationStopReason::Error;
            result.stop_detail = format!("step to {params} parameters failed: {err}");
            break;
        }
        let index = result.steps.len() - 1;
        let clean = if knee_seen {
            false
        } else {
            let judgement = judge.judge(index, step_s, s_per_gb, swap);
            if let Some(suspect) = judgement.cleared_suspect
                && let Some(step) = result.steps.get_mut(suspect)
            {
                passed_over += 1;
                step.note = Some(format!(
                    "{}; the next step was not slow: contention, not swapping",
                    step.note.as_deref().unwrap_or("slow step")
                ));
            }
            match judgement.verdict {
                Verdict::Ordinary => true,
                Verdict::Slow(note) => {
                    passed_over += 1;
                    result.steps[index].note = Some(note);
                    true
                }
                Verdict::Suspect(note) => {
                    result.steps[index].note = Some(note);
                    false
                }
                Verdict::Knee(detail) => {
                    knee_seen = true;
                    result.steps[index].note = Some(format!("the swap knee: {detail}"));
                    let detail = format!("step to {params} parameters took {detail}");
                    if !p.allow_swap {
                        on_step(&result);
                        result.stop_reason = AllocationStopReason::Swapping;
                        result.stop_detail = detail;
                        break;
                    }
                    result.stop_detail = format!("{detail} (continued: --allow-swap)");
                    false
                }
            }
        };
        if clean {
            result.largest_clean_params = params;
            result.largest_clean_bytes = total;
        }
        on_step(&result);
    }
    // A suspect that no later step confirmed or cleared (the budget or the clock came first).
    if let Some(suspect) = judge.suspect
        && let Some(step) = result.steps.get_mut(suspect)
    {
        step.note = Some(format!(
            "{}; the stage ended before a next step could confirm it, so the sizes from this \
             step on are not counted as clean",
            step.note.as_deref().unwrap_or("slow step")
        ));
    }
    if passed_over > 0 {
        result.stop_detail = format!(
            "{}; {passed_over} slow step(s) were not the swap knee (contention, not swapping: \
             see the steps' notes)",
            result.stop_detail
        );
    }
    drop(held);
    gpu.wait()?;
    Ok(result)
}

/// What the host's counters said about one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepSwap {
    /// No counters (or one of the two readings failed): only timing can judge the step.
    Unknown,
    /// The counters before and after the step.
    Counted {
        /// Pages swapped out during the step.
        pages_out: u64,
        /// Pages swapped in during the step.
        pages_in: u64,
        /// The host has no swap configured (Linux `SwapTotal` 0).
        swap_off: bool,
        /// Memory the OS could still hand out after the step, bytes, if known.
        mem_available_bytes: Option<u64>,
    },
}

impl StepSwap {
    /// The difference between the readings before and after a step.
    pub fn between(before: Option<SwapSample>, after: Option<SwapSample>) -> StepSwap {
        match (before, after) {
            (Some(b), Some(a)) => StepSwap::Counted {
                pages_out: a.pages_out.saturating_sub(b.pages_out),
                pages_in: a.pages_in.saturating_sub(b.pages_in),
                swap_off: a.swap_total_bytes == Some(0),
                mem_available_bytes: a.mem_available_bytes,
            },
            _ => StepSwap::Unknown,
        }
    }

    fn pages_out(self) -> Option<u64> {
        match self {
            StepSwap::Counted { pages_out, .. } => Some(pages_out),
            StepSwap::Unknown => None,
        }
    }

    fn pages_in(self) -> Option<u64> {
        match self {
            StepSwap::Counted { pages_in, .. } => Some(pages_in),
            StepSwap::Unknown => None,
        }
    }
}

/// What one step says about the swap knee.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not slow.
    Ordinary,
    /// Slow, but the host swapped nothing out (or has no swap): contention. The step's note.
    Slow(String),
    /// Slow, and no counters tell why: the knee only if the next step is slow too. The note.
    Suspect(String),
    /// The swap knee: the step's timing and why it counts.
    Knee(String),
}

/// A step's [`Verdict`], and the earlier suspect that this step cleared, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// What this step says.
    pub verdict: Verdict,
    /// Index of the suspect step before this one that turned out not to be the knee (this
    /// step was not slow, or its counters showed no swapping).
    pub cleared_suspect: Option<usize>,
}

/// Decides step by step whether the stage reached the swap knee (the rule is in the module docs).
/// Pure, so the rule is tested without a GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct KneeJudge {
    factor: f64,
    /// Seconds per GB of the ordinary (not slow) steps so far.
    baseline: Vec<f64>,
    /// The slow step without counters that waits for the next step to confirm it.
    suspect: Option<usize>,
}

impl KneeJudge {
    /// A judge with the knee factor (see [`DEFAULT_SWAP_FACTOR`]).
    pub fn new(factor: f64) -> KneeJudge {
        KneeJudge {
            factor,
            baseline: Vec::new(),
            suspect: None,
        }
    }

    /// Judges the step at `index` (its timing and what the counters said during it).
    pub fn judge(&mut self, index: usize, step_s: f64, s_per_gb: f64, swap: StepSwap) -> Judgement {
        let median = median(&self.baseline);
        let slow = self.baseline.len() >= MIN_STEPS_BEFORE_KNEE
            && step_s >= MIN_KNEE_STEP_S
            && s_per_gb > self.factor * median;
        let pending = self.suspect.take();
        if !slow {
            self.baseline.push(s_per_gb);
            return Judgement {
                verdict: Verdict::Ordinary,
                cleared_suspect: pending,
            };
        }
        let timing = format!(
            "{s_per_gb:.3} s/GB, over {} x the median {median:.3} s/GB of the earlier steps",
            self.factor
        );
        let available = |bytes: Option<u64>| {
            bytes
                .map(|b| format!(", {:.2} GiB still available", b as f64 / GIB as f64))
                .unwrap_or_default()
        };
        let verdict = match swap {
            StepSwap::Counted {
                pages_out,
                mem_available_bytes,
                ..
            } if pages_out > 0 => Verdict::Knee(format!(
                "{timing}, and the host swapped out {pages_out} pages during it{}: the host is \
                 swapping",
                available(mem_available_bytes)
            )),
            StepSwap::Counted {
                swap_off: true,
                mem_available_bytes,
                ..
            } => Verdict::Slow(format!(
                "slow step, swap is off on this host: contention, not swapping ({timing}{})",
                available(mem_available_bytes)
            )),
            StepSwap::Counted {
                mem_available_bytes,
                ..
            } => Verdict::Slow(format!(
                "slow step, no pages swapped out: contention, not swapping ({timing}{})",
                available(mem_available_bytes)
            )),
            StepSwap::Unknown => match pending {
                Some(_) => Verdict::Knee(format!(
                    "{timing}, the second slow step in a row (this host gives no swap counters): \
                     the host is swapping"
                )),
                None => {
                    self.suspect = Some(index);
                    Verdict::Suspect(format!(
                        "slow step ({timing}); this host gives no swap counters, so it is the \
                         swap knee only if the next step is slow too"
                    ))
                }
            },
        };
        // A knee confirms the suspect; a counted step without swap-outs clears it.
        let cleared_suspect = match verdict {
            Verdict::Slow(_) => pending,
            _ => None,
        };
        Judgement {
            verdict,
            cleared_suspect,
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_SWAP: StepSwap = StepSwap::Counted {
        pages_out: 0,
        pages_in: 0,
        swap_off: false,
        mem_available_bytes: None,
    };

    /// Two ordinary steps of 1 s/GB, then `steps` of (seconds, s/GB, counters).
    fn verdicts(steps: &[(f64, f64, StepSwap)]) -> Vec<Judgement> {
        let mut judge = KneeJudge::new(DEFAULT_SWAP_FACTOR);
        for i in 0..2 {
            judge.judge(i, 1.0, 1.0, NO_SWAP);
        }
        steps
            .iter()
            .enumerate()
            .map(|(i, &(s, per_gb, swap))| judge.judge(i + 2, s, per_gb, swap))
            .collect()
    }

    #[test]
    fn the_brief_s_lavapipe_case_is_contention_not_a_knee() {
        // 11.4 s/GB against a 2.0 s/GB median while a compiler ran, nothing swapped out.
        let mut judge = KneeJudge::new(DEFAULT_SWAP_FACTOR);
        judge.judge(0, 2.0, 2.0, NO_SWAP);
        judge.judge(1, 2.0, 2.0, NO_SWAP);
        let j = judge.judge(2, 11.4, 11.4, NO_SWAP);
        assert!(
            matches!(&j.verdict, Verdict::Slow(n) if n.starts_with("slow step, no pages swapped out: contention, not swapping")),
            "{j:?}"
        );
    }

    #[test]
    fn swap_outs_during_a_slow_step_make_the_knee() {
        let swapped = StepSwap::Counted {
            pages_out: 10,
            pages_in: 0,
            swap_off: false,
            mem_available_bytes: Some(GIB),
        };
        let j = verdicts(&[(9.0, 9.0, swapped)]);
        assert!(
            matches!(&j[0].verdict, Verdict::Knee(d) if d.contains("swapped out 10 pages")),
            "{j:?}"
        );
        // The same swap-outs during an ordinary step are no knee.
        assert_eq!(
            verdicts(&[(1.0, 1.0, swapped)])[0].verdict,
            Verdict::Ordinary
        );
    }

    #[test]
    fn with_swap_off_no_step_is_the_knee() {
        let off = StepSwap::Counted {
            pages_out: 0,
            pages_in: 0,
            swap_off: true,
            mem_available_bytes: None,
        };
        for j in verdicts(&[(9.0, 9.0, off), (9.0, 9.0, off), (9.0, 9.0, off)]) {
            assert!(
                matches!(&j.verdict, Verdict::Slow(n) if n.contains("swap is off")),
                "{j:?}"
            );
        }
    }

    #[test]
    fn without_counters_the_knee_needs_two_slow_steps_in_a_row() {
        let u = StepSwap::Unknown;
        let j = verdicts(&[(9.0, 9.0, u), (1.0, 1.0, u), (9.0, 9.0, u), (9.0, 9.0, u)]);
        assert!(matches!(j[0].verdict, Verdict::Suspect(_)), "{j:?}");
        // The next step was ordinary: it clears the suspect.
        assert_eq!(j[1].verdict, Verdict::Ordinary);
        assert_eq!(j[1].cleared_suspect, Some(2));
        assert!(matches!(j[2].verdict, Verdict::Suspect(_)), "{j:?}");
        assert!(
            matches!(&j[3].verdict, Verdict::Knee(d) if d.contains("second slow step in a row")),
            "{j:?}"
        );
    }

    #[test]
    fn short_steps_and_the_first_steps_are_never_slow() {
        let mut judge = KneeJudge::new(DEFAULT_SWAP_FACTOR);
        let u = StepSwap::Unknown;
        // No baseline yet.
        assert_eq!(judge.judge(0, 9.0, 9.0, u).verdict, Verdict::Ordinary);
        assert_eq!(judge.judge(1, 0.01, 0.01, u).verdict, Verdict::Ordinary);
        assert_eq!(judge.judge(2, 0.01, 0.01, u).verdict, Verdict::Ordinary);
        // Under MIN_KNEE_STEP_S: timer noise, whatever its s/GB.
        assert_eq!(judge.judge(3, 0.2, 100.0, u).verdict, Verdict::Ordinary);
    }

    #[test]
    fn slow_steps_stay_out_of_the_baseline() {
        let j = verdicts(&[
            (9.0, 9.0, NO_SWAP),
            (9.0, 9.0, NO_SWAP),
            (9.0, 9.0, NO_SWAP),
            (9.0, 9.0, NO_SWAP),
        ]);
        // Had the slow steps joined the median, the last ones would look ordinary.
        assert!(
            j.iter().all(|j| matches!(j.verdict, Verdict::Slow(_))),
            "{j:?}"
        );
    }
}
