//! The probe run: carries out a [`Plan`] stage by stage and step by step on one device, filling
//! a [`ProbeReport`] as it goes, and tells a [`Progress`] about every step. The same `async` loop
//! runs natively (the CLI drives it with `pollster`) and in a browser tab (WebGPU, no blocking
//! poll); only the progress display differs.
//!
//! The report always describes what is known: a stage being run is recorded at once as failed
//! with "did not finish", then updated after every step (and after every allocation step), and
//! [`Progress::report_changed`] is called each time, so a front end that saves the report then
//! keeps every verified figure of a run that is killed, crashes or loses its device.

use std::future::Future;
use std::sync::{Arc, Mutex};

use headroom_core::report::{
    AllocationResult, Measurement, ProbeReport, Stage, StageRecord, Status,
};

use crate::gpu::now_s;
use crate::kernels::allocation::{self, AllocationParams, DEFAULT_SWAP_FACTOR};
use crate::kernels::attention::{self, AttentionParams};
use crate::kernels::bandwidth::{self, BandwidthParams};
use crate::kernels::decode::{self, DecodeParams};
use crate::kernels::gemm::{self, GemmParams, Tile};
use crate::kernels::max_buffer::{self, MaxBufferParams};
use crate::kernels::transfer::{self, TransferParams};
use crate::plan::{Plan, Step};

/// What a front end hears of a run. Every method but [`Progress::go_on`] has an empty default.
pub trait Progress {
    /// A stage begins with these steps.
    fn stage_started(&mut self, stage: Stage, steps: &[Step]) {
        let _ = (stage, steps);
    }
    /// A step begins.
    fn step_started(&mut self, step: &Step) {
        let _ = step;
    }
    /// A step ended: `measurements` are the ones it produced (none for the memory stages),
    /// `record` is its stage so far.
    fn step_finished(&mut self, step: &Step, measurements: &[Measurement], record: &StageRecord) {
        let _ = (step, measurements, record);
    }
    /// A stage ended with this record.
    fn stage_finished(&mut self, record: &StageRecord) {
        let _ = record;
    }
    /// The report changed (a stage began, a step or an allocation step ended, the run ended):
    /// the moment to save it.
    fn report_changed(&mut self, report: &ProbeReport) {
        let _ = report;
    }
    /// Asked before every step: `false` stops the run there (a cancel button, a failed save).
    /// A browser awaits a zero-length timer here so that the page repaints between steps.
    fn go_on(&mut self) -> impl Future<Output = bool>;
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every planned stage ran (some may have failed); the report is `complete`.
    Finished,
    /// [`Progress::go_on`] said no; the report keeps what finished.
    Stopped,
}

/// Reason recorded on a stage while it runs: what a report keeps if the run never comes back.
const IN_PROGRESS: &str = "did not finish: the run stopped during this stage";

/// What the device told us through callbacks: a loss, and errors no scope caught.
#[derive(Default)]
struct DeviceEvents {
    lost: Mutex<Option<String>>,
    uncaptured: Mutex<Vec<String>>,
}

impl DeviceEvents {
    fn watch(device: &wgpu::Device) -> Arc<DeviceEvents> {
        let events = Arc::new(DeviceEvents::default());
        let on_lost = events.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = on_lost.lost.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        let on_error = events.clone();
        device.on_uncaptured_error(Arc::new(move |err: wgpu::Error| {
            if let Ok(mut list) = on_error.uncaptured.lock() {
                list.push(err.to_string());
            }
        }));
        events
    }

    fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    fn take_uncaptured(&self) -> Vec<String> {
        self.uncaptured
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// Seeds of the kernels' random inputs: a fresh one per step (LCG step of Knuth's MMIX).
struct Seeds(u64);

impl Seeds {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
}

/// Runs `plan` on `device`, appending one record per planned stage to `report.stages` (and a
/// skipped record for every stage not planned), and sets `report.complete` when every stage
/// ran. `seed` makes the kernels' random inputs: give a fresh one per run (the clock).
pub async fn run<P: Progress>(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    plan: &Plan,
    seed: u64,
    report: &mut ProbeReport,
    progress: &mut P,
) -> Outcome {
    let events = DeviceEvents::watch(device);
    let mut seeds = Seeds(seed);
    for &stage in &plan.stages {
        if let Some(lost) = events.lost() {
            report.stages.push(StageRecord::skipped(
                stage,
                format!("device lost earlier: {lost}"),
            ));
            progress.report_changed(report);
            continue;
        }
        let steps = plan.steps(stage);
        progress.stage_started(stage, &steps);
        let start = now_s();
        report.stages.push(StageRecord {
            reason: Some(IN_PROGRESS.to_owned()),
            ..StageRecord::new(stage, Status::Failed)
        });
        progress.report_changed(report);
        let mut stop: Option<String> = None;
        let mut cancelled = false;
        for step in &steps {
            if let Some(lost) = events.lost() {
                stop = Some(format!("device lost: {lost}"));
                break;
            }
            if now_s() - start > plan.sizes.stage_time_limit_s {
                stop = Some(format!(
                    "time limit of {:.0} s reached before {}",
                    plan.sizes.stage_time_limit_s,
                    step.label()
                ));
                break;
            }
            if !progress.go_on().await {
                stop = Some(format!("stopped before {}", step.label()));
                cancelled = true;
                break;
            }
            progress.step_started(step);
            let done = run_step(device, queue, plan, *step, seeds.next(), report, progress).await;
            let Some(record) = report.stages.last_mut() else {
                break;
            };
            let new_from = record.measurements.len();
            match done {
                StepResult::Measurements(ms) => record.measurements.extend(ms),
                StepResult::MaxBuffer(Ok(r)) => record.max_buffer = Some(r),
                StepResult::Allocation(Ok(r)) => record.allocation = Some(r),
                StepResult::MaxBuffer(Err(e)) | StepResult::Allocation(Err(e)) => {
                    record.reason = Some(e.clone());
                    stop = Some(e);
                }
            }
            record.duration_s = now_s() - start;
            let record: &StageRecord = record;
            progress.step_finished(step, &record.measurements[new_from..], record);
            progress.report_changed(report);
            if stop.is_some() {
                break;
            }
        }
        let Some(record) = report.stages.last_mut() else {
            break;
        };
        finish(record, stop, now_s() - start, events.take_uncaptured());
        progress.stage_finished(record);
        progress.report_changed(report);
        if cancelled {
            return Outcome::Stopped;
        }
    }
    for stage in Stage::ALL.into_iter().filter(|s| !plan.stages.contains(s)) {
        let reason = plan
            .skipped
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or("not selected by --only", |(_, why)| why.as_str());
        report.stages.push(StageRecord::skipped(stage, reason));
    }
    report.complete = true;
    progress.report_changed(report);
    Outcome::Finished
}

/// The stage's final status and reason: failed when it stopped early, when one of its
/// measurements failed, or when a memory stage found nothing; the stop of the allocation stage
/// as its reason; uncaptured device errors appended.
fn finish(record: &mut StageRecord, stop: Option<String>, duration_s: f64, errors: Vec<String>) {
    record.duration_s = duration_s;
    let any_failed = record
        .measurements
        .iter()
        .any(|m| m.status == Status::Failed);
    let no_buffer = record
        .max_buffer
        .as_ref()
        .is_some_and(|m| m.largest_verified_bytes == 0);
    (record.status, record.reason) = if let Some(stop) = stop {
        (Status::Failed, Some(stop))
    } else if any_failed {
        (
            Status::Failed,
            Some("one or more measurements failed (see their errors)".to_owned()),
        )
    } else if no_buffer {
        (
            Status::Failed,
            Some("no buffer size could be allocated and verified".to_owned()),
        )
    } else if let Some(a) = &record.allocation {
        (Status::Ok, Some(format!("stopped: {}", a.stop_detail)))
    } else {
        (Status::Ok, None)
    };
    if !errors.is_empty() {
        let note = format!("uncaptured GPU errors: {}", errors.join("; "));
        record.reason = Some(match record.reason.take() {
            Some(r) => format!("{r}; {note}"),
            None => note,
        });
    }
}

/// What one step produced.
enum StepResult {
    Measurements(Vec<Measurement>),
    MaxBuffer(Result<headroom_core::report::MaxBufferResult, String>),
    Allocation(Result<AllocationResult, String>),
}

async fn run_step<P: Progress>(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    plan: &Plan,
    step: Step,
    seed: u64,
    report: &mut ProbeReport,
    progress: &mut P,
) -> StepResult {
    let sizes = &plan.sizes;
    let caps = &plan.capabilities;
    match step {
        Step::Gemm { variant, n } => {
            let p = GemmParams {
                variant,
                n,
                seed,
                settings: sizes.measure,
                tiles: Tile::CANDIDATES.to_vec(),
                coop_properties: caps.coop.clone(),
                subgroup_size: caps.subgroup_max_size,
            };
            StepResult::Measurements(vec![gemm::run(device, queue, &p).await])
        }
        Step::Attention { head_dim, causal } => {
            let (batch, heads, seq) = sizes.attention;
            let p = AttentionParams {
                batch,
                heads,
                seq,
                head_dim,
                causal,
                seed,
                settings: sizes.measure,
                key_block: sizes.attention_key_block,
                coop_properties: caps.coop.clone(),
                subgroup_size: caps.fixed_subgroup_size,
            };
            StepResult::Measurements(vec![attention::run(device, queue, &p).await])
        }
        Step::Bandwidth { bytes } => {
            let p = BandwidthParams {
                size_bytes: bytes,
                seed: seed as u32,
                settings: sizes.measure,
            };
            StepResult::Measurements(bandwidth::run(device, queue, &p).await)
        }
        Step::Decode { format, params } => {
            let p = DecodeParams {
                format,
                model_params: params,
                seed: seed as u32,
                settings: sizes.measure,
                subgroup_size: caps.fixed_subgroup_size,
            };
            StepResult::Measurements(vec![decode::run(device, queue, &p).await])
        }
        Step::HostBandwidth { bytes } => {
            #[cfg(not(target_arch = "wasm32"))]
            let measurement = crate::kernels::host_bandwidth::run(
                &crate::kernels::host_bandwidth::HostBandwidthParams {
                    size_bytes: bytes,
                    seed,
                    settings: sizes.measure,
                },
            );
            #[cfg(target_arch = "wasm32")]
            let measurement = crate::kernels::skipped(
                headroom_core::report::Metric::Host(headroom_core::report::HostMetric::Read),
                crate::params! { "buffer_bytes" => bytes },
                crate::plan::BROWSER_HOST_BANDWIDTH_SKIP,
            );
            StepResult::Measurements(vec![measurement])
        }
        Step::Transfer { bytes } => {
            let p = TransferParams {
                size_bytes: bytes,
                seed: seed as u32,
                settings: sizes.measure,
            };
            StepResult::Measurements(transfer::run(device, queue, &p).await)
        }
        Step::MaxBuffer => {
            let p = MaxBufferParams {
                cap_bytes: plan.memory_cap_bytes,
                seed: seed as u32,
                simulate_oom_above_bytes: plan.simulate_oom_above_bytes,
                time_limit_s: sizes.stage_time_limit_s,
            };
            StepResult::MaxBuffer(
                max_buffer::run(device, queue, &p)
                    .await
                    .map_err(|e| e.to_string()),
            )
        }
        Step::Allocation => {
            let p = AllocationParams {
                step_params: sizes.allocation_step_params,
                budget_bytes: plan.budget.bytes,
                swap_factor: DEFAULT_SWAP_FACTOR,
                allow_swap: plan.allow_swap,
                time_limit_s: sizes.stage_time_limit_s,
                seed: seed as u32,
                simulate_oom_above_bytes: plan.simulate_oom_above_bytes,
                simulate_slow_steps: plan.simulate_slow_steps.clone(),
            };
            // Native: the OS's swap counters; a browser has none (the stage then needs two slow
            // steps in a row to call the knee).
            let mut counters = crate::swap::host_counters();
            // Every verified step goes into the report at once: a stage killed by the OOM
            // killer keeps the sizes it verified.
            let mut on_step = |partial: &AllocationResult| {
                if let Some(record) = report.stages.last_mut() {
                    record.allocation = Some(partial.clone());
                }
                progress.report_changed(report);
            };
            StepResult::Allocation(
                allocation::run(device, queue, &p, counters.as_mut(), &mut on_step)
                    .await
                    .map_err(|e| e.to_string()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use headroom_core::report::{AllocationStopReason, BandwidthMetric, MaxBufferResult, Metric};

    use super::*;
    use crate::kernels::failed;

    fn in_progress(stage: Stage) -> StageRecord {
        StageRecord {
            reason: Some(IN_PROGRESS.to_owned()),
            ..StageRecord::new(stage, Status::Failed)
        }
    }

    #[test]
    fn a_finished_stage_says_what_happened() {
        let mut clean = in_progress(Stage::Gemm);
        finish(&mut clean, None, 2.0, Vec::new());
        assert_eq!((clean.status, clean.reason.as_deref()), (Status::Ok, None));
        assert_eq!(clean.duration_s, 2.0);

        let mut stopped = in_progress(Stage::Attention);
        finish(
            &mut stopped,
            Some("device lost: gone".to_owned()),
            1.0,
            Vec::new(),
        );
        assert_eq!(stopped.status, Status::Failed);
        assert_eq!(stopped.reason.as_deref(), Some("device lost: gone"));

        let mut wrong = in_progress(Stage::Bandwidth);
        wrong.measurements.push(failed(
            Metric::Bandwidth(BandwidthMetric::Read),
            Default::default(),
            &crate::ProbeError::WrongResult("3 words".to_owned()),
        ));
        finish(&mut wrong, None, 1.0, vec!["lost buffer".to_owned()]);
        assert_eq!(wrong.status, Status::Failed);
        assert_eq!(
            wrong.reason.as_deref(),
            Some(
                "one or more measurements failed (see their errors); uncaptured GPU errors: lost buffer"
            )
        );

        let mut nothing = in_progress(Stage::MaxBuffer);
        nothing.max_buffer = Some(MaxBufferResult {
            adapter_limit_bytes: 1 << 30,
            searched_up_to_bytes: 1 << 30,
            largest_accepted_bytes: 0,
            largest_verified_bytes: 0,
            attempts: Vec::new(),
        });
        finish(&mut nothing, None, 1.0, Vec::new());
        assert_eq!(nothing.status, Status::Failed);

        let mut allocation = in_progress(Stage::Allocation);
        allocation.allocation = Some(AllocationResult {
            step_params: 1,
            bytes_per_param: 2,
            chunk_bytes: 2,
            budget_bytes: Some(4),
            swap_factor: 4.0,
            swap_counters: None,
            steps: Vec::new(),
            stop_reason: AllocationStopReason::Budget,
            stop_detail: "the budget".to_owned(),
            largest_clean_params: 1,
            largest_clean_bytes: 2,
        });
        finish(&mut allocation, None, 1.0, Vec::new());
        assert_eq!(allocation.status, Status::Ok);
        assert_eq!(allocation.reason.as_deref(), Some("stopped: the budget"));
    }

    #[test]
    fn seeds_differ_step_to_step() {
        let mut seeds = Seeds(1);
        let (a, b) = (seeds.next(), seeds.next());
        assert_ne!(a, b);
        assert_ne!(a, 1);
    }
}
