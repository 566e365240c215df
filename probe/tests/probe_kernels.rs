//! Every kernel's correctness on a real Vulkan device at small sizes. CI runs these on Mesa's
//! lavapipe (`apt-get install mesa-vulkan-drivers libvulkan1`), a conformant Vulkan driver on the
//! CPU (~1 GFLOP/s), so the sizes stay tiny.

use std::sync::OnceLock;

use headroom_core::report::{AllocationStopReason, Status};
use headroom_probe::gpu::Gpu;
use headroom_probe::kernels::allocation::{self, AllocationParams, DEFAULT_SWAP_FACTOR};
use headroom_probe::kernels::attention::{self, AttentionParams};
use headroom_probe::kernels::attention_coop::{self, CoopAttention, TileStore};
use headroom_probe::kernels::bandwidth::{self, BandwidthParams};
use headroom_probe::kernels::decode::{self, DecodeFormat, DecodeParams, HIDDEN};
use headroom_probe::kernels::gemm::{self, GemmParams, GemmVariant, Tile};
use headroom_probe::kernels::host_bandwidth::{self, HostBandwidthParams};
use headroom_probe::kernels::max_buffer::{self, MaxBufferParams};
use headroom_probe::kernels::transfer::{self, TransferParams};
use headroom_probe::kernels::{MIB, MeasureSettings};
use headroom_probe::plan::Capabilities;
use headroom_probe::swap::{NoSwapCounters, SwapCounters, SwapSample};

struct TestGpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: wgpu::Adapter,
}

/// One device shared by all tests (the first Vulkan adapter: lavapipe in CI).
fn gpu() -> &'static TestGpu {
    static GPU: OnceLock<TestGpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
        let adapter = adapters.into_iter().next().unwrap_or_else(|| {
            panic!("no Vulkan adapter: install lavapipe with `apt-get install mesa-vulkan-drivers libvulkan1`")
        });
        let (device, queue) = pollster::block_on(headroom_probe::adapter::request_device(&adapter))
            .unwrap_or_else(|err| panic!("request_device failed: {err}"));
        TestGpu { device, queue, adapter }
    })
}

fn gemm_params(variant: GemmVariant, n: u32) -> GemmParams {
    let g = gpu();
    GemmParams {
        variant,
        n,
        seed: 7,
        settings: MeasureSettings::ONCE,
        tiles: Tile::CANDIDATES.to_vec(),
        coop_properties: g.adapter.cooperative_matrix_properties(),
        subgroup_size: g.adapter.get_info().subgroup_max_size,
    }
}

fn assert_ok(m: &headroom_core::report::Measurement) {
    assert_eq!(
        m.status,
        Status::Ok,
        "{} failed: {:?} ({:?})",
        m.name,
        m.error,
        m.verification
    );
    let v = m
        .verification
        .as_ref()
        .unwrap_or_else(|| panic!("{} has no verification", m.name));
    assert!(v.passed && v.rel_error <= v.tolerance, "{}: {v:?}", m.name);
    assert!(v.checked_elements > 0);
    assert!(
        m.timing
            .as_ref()
            .is_some_and(|t| t.total_s > 0.0 && t.iterations >= 1)
    );
}

#[test]
fn gemm_f32_every_tile_is_correct() {
    let g = gpu();
    let m = pollster::block_on(gemm::run(
        &g.device,
        &g.queue,
        &gemm_params(GemmVariant::F32, 256),
    ));
    assert_ok(&m);
    assert!(m.flops_per_s.is_some_and(|f| f > 0.0));
    assert_eq!(m.accumulator.as_deref(), Some("f32"));
    // Every candidate tile ran and verified (a number, not an error string).
    let candidates = m.params["candidates"].as_object().expect("candidates");
    assert_eq!(candidates.len(), Tile::CANDIDATES.len(), "{candidates:?}");
    assert!(candidates.values().all(|v| v.is_number()), "{candidates:?}");
}

#[test]
fn gemm_f16_both_accumulators_are_correct() {
    let g = gpu();
    if !g.device.features().contains(wgpu::Features::SHADER_F16) {
        panic!("lavapipe offers SHADER_F16; this adapter does not");
    }
    for variant in [GemmVariant::F16AccF32, GemmVariant::F16AccF16] {
        let m = pollster::block_on(gemm::run(&g.device, &g.queue, &gemm_params(variant, 128)));
        assert_ok(&m);
        assert_eq!(m.accumulator.as_deref(), Some(variant.accumulator()));
    }
}

#[test]
fn gemm_odd_size_is_skipped_with_reason() {
    let g = gpu();
    let m = pollster::block_on(gemm::run(
        &g.device,
        &g.queue,
        &gemm_params(GemmVariant::F32, 100),
    ));
    assert_eq!(m.status, Status::Skipped);
    assert!(
        m.error.as_deref().is_some_and(|e| e.contains("divides")),
        "{:?}",
        m.error
    );
}

#[test]
fn gemm_coop_is_skipped_without_matrix_units() {
    let g = gpu();
    if g.device
        .features()
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
    {
        let m = pollster::block_on(gemm::run(
            &g.device,
            &g.queue,
            &gemm_params(GemmVariant::CoopF16AccF32, 256),
        ));
        assert_ok(&m);
        return;
    }
    let m = pollster::block_on(gemm::run(
        &g.device,
        &g.queue,
        &gemm_params(GemmVariant::CoopF16AccF32, 256),
    ));
    assert_eq!(m.status, Status::Skipped);
    assert!(
        m.error
            .as_deref()
            .is_some_and(|e| e.contains("COOPERATIVE_MATRIX"))
    );
}

#[test]
fn coop_kernel_source_binds_every_index() {
    // naga 30 panics on indices written inline in coopLoad/coopStore: every one is a `let`.
    let tile = gemm::CoopTile {
        frag: 16,
        fm: 2,
        fn_: 2,
        subgroup: 32,
    };
    let src = gemm::coop_wgsl(GemmVariant::CoopF16AccF32, tile);
    for line in src
        .lines()
        .filter(|l| l.contains("coopLoadT") || l.contains("coopStoreT"))
    {
        assert!(
            line.contains("&mat_a[pa") || line.contains("&mat_b[pb") || line.contains("&mat_c[pc"),
            "{line}"
        );
    }
    let module = wgpu::naga::front::wgsl::parse_str(&src);
    assert!(
        module.is_ok(),
        "{:?}",
        module.err().map(|e| e.emit_to_string(&src))
    );
}

/// Small key tiles keep lavapipe's shader compile short (see `AttentionParams::key_block`).
const CPU_KEY_BLOCK: u32 = 4;

#[test]
fn attention_all_variants_are_correct() {
    let g = gpu();
    for head_dim in [64, 128] {
        for causal in [false, true] {
            let p = AttentionParams {
                batch: 1,
                heads: 2,
                seq: 128,
                head_dim,
                causal,
                seed: 11,
                settings: MeasureSettings::ONCE,
                key_block: Some(CPU_KEY_BLOCK),
                coop_properties: g.adapter.cooperative_matrix_properties(),
                subgroup_size: Capabilities::of(&g.adapter).fixed_subgroup_size,
            };
            let m = pollster::block_on(attention::run(&g.device, &g.queue, &p));
            assert_ok(&m);
            assert!(m.name.to_string().contains(&format!("d{head_dim}")));
        }
    }
}

#[test]
fn bandwidth_read_write_copy_are_checked() {
    let g = gpu();
    let p = BandwidthParams {
        size_bytes: 8 * MIB,
        seed: 3,
        settings: MeasureSettings::ONCE,
    };
    let ms = pollster::block_on(bandwidth::run(&g.device, &g.queue, &p));
    let names: Vec<String> = ms.iter().map(|m| m.name.to_string()).collect();
    assert_eq!(
        names,
        ["bandwidth.read", "bandwidth.write", "bandwidth.copy"]
    );
    for m in &ms {
        assert_ok(m);
        assert!(m.bytes_per_s.is_some_and(|b| b > 0.0));
        // Every launch shape was tried and checked; the chosen one is recorded.
        let tuning = m.params["tuning"].as_array().expect("tuning");
        assert!(tuning.len() > 1, "{}", m.name);
        assert!(tuning.iter().all(|t| t["passed"] == true), "{}", m.name);
        assert!(m.params["workgroup_size"].as_u64().is_some());
    }
    assert_eq!(ms[2].bytes_counted.as_deref(), Some("read + written"));
    assert_eq!(
        ms[2].params["bytes_per_iteration"].as_f64(),
        Some(2.0 * (8 * MIB) as f64)
    );
}

/// Host↔device transfer: upload and download of one buffer, the round trip checked word for
/// word before either speed counts.
#[test]
fn transfer_upload_and_download_round_trip() {
    let g = gpu();
    let p = TransferParams {
        size_bytes: 4 * MIB + 100,
        seed: 11,
        settings: MeasureSettings::ONCE,
    };
    let ms = pollster::block_on(transfer::run(&g.device, &g.queue, &p));
    let names: Vec<String> = ms.iter().map(|m| m.name.to_string()).collect();
    assert_eq!(names, ["transfer.upload", "transfer.download"]);
    for m in &ms {
        assert_ok(m);
        assert!(m.bytes_per_s.is_some_and(|b| b > 0.0), "{}", m.name);
        // Rounded down to the binding alignment; every 4-byte word compared.
        assert_eq!(m.params["buffer_bytes"].as_u64(), Some(4 * MIB));
        let v = m.verification.as_ref().expect("verification");
        assert_eq!(v.checked_elements, MIB);
        assert!(m.timing.as_ref().is_some_and(|t| t.iterations >= 3));
    }
}

/// Host RAM read with every core: the parallel sums match the single-threaded reference.
#[test]
fn host_bandwidth_sums_are_checked() {
    let m = host_bandwidth::run(&HostBandwidthParams {
        size_bytes: 16 * MIB,
        seed: 5,
        settings: MeasureSettings::ONCE,
    });
    assert_eq!(m.name.to_string(), "host_bandwidth.read");
    assert_ok(&m);
    assert!(m.bytes_per_s.is_some_and(|b| b > 0.0));
    assert!(m.params["threads"].as_u64().is_some_and(|t| t >= 1));
    assert!(m.verification.as_ref().is_some_and(|v| v.passed));
}

/// Write's flat 2-D grids and joined dispatches on a device with tiny grid and binding limits:
/// a 8 MiB buffer is 4 binding pieces of 2 MiB and each flat dispatch needs many rows of 16
/// workgroups, so the row arithmetic and the 4-binding kernel run and are checked word for word.
#[test]
fn bandwidth_write_grids_pass_with_small_limits() {
    let g = gpu();
    let limits = wgpu::Limits {
        max_compute_workgroups_per_dimension: 16,
        max_storage_buffer_binding_size: 2 * MIB,
        ..g.adapter.limits()
    };
    let (device, queue) = pollster::block_on(g.adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("small limits"),
        required_features: wgpu::Features::empty(),
        required_limits: limits,
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .expect("a device with lower limits");
    let p = BandwidthParams {
        size_bytes: 8 * MIB,
        seed: 5,
        settings: MeasureSettings::ONCE,
    };
    let ms = pollster::block_on(bandwidth::run(&device, &queue, &p));
    for m in &ms {
        assert_ok(m);
    }
    let tuning = ms[1].params["tuning"].as_array().expect("tuning");
    for grid in [
        "flat 2-D grid, one dispatch per piece",
        "flat 2-D grid, all pieces in one dispatch",
        "grid-stride, all pieces in one dispatch",
    ] {
        let tried: Vec<_> = tuning.iter().filter(|t| t["grid"] == grid).collect();
        assert!(!tried.is_empty(), "{grid} not tried: {tuning:?}");
        assert!(tried.iter().all(|t| t["passed"] == true), "{grid}");
    }
    assert!(
        tuning
            .iter()
            .any(|t| t["grid"] == "flat 2-D grid, all pieces in one dispatch" && t["bindings"] == 4),
        "{tuning:?}"
    );
}

#[test]
fn max_buffer_verifies_up_to_the_cap_and_respects_simulated_oom() {
    let g = gpu();
    let p = MaxBufferParams {
        cap_bytes: 32 * MIB,
        seed: 5,
        simulate_oom_above_bytes: None,
        time_limit_s: 60.0,
    };
    let r = pollster::block_on(max_buffer::run(&g.device, &g.queue, &p)).expect("fill kernels");
    assert_eq!(r.largest_verified_bytes, 32 * MIB);
    assert_eq!(r.attempts.len(), 1);
    let p = MaxBufferParams {
        simulate_oom_above_bytes: Some(10 * MIB),
        ..p
    };
    let r = pollster::block_on(max_buffer::run(&g.device, &g.queue, &p)).expect("fill kernels");
    assert!(
        r.largest_verified_bytes <= 10 * MIB && r.largest_verified_bytes >= 9 * MIB,
        "{r:?}"
    );
    assert!(
        r.attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("simulated"))
    );
}

fn allocation_params() -> AllocationParams {
    AllocationParams {
        step_params: 2 * MIB,
        budget_bytes: Some(20 * MIB),
        swap_factor: DEFAULT_SWAP_FACTOR,
        allow_swap: false,
        time_limit_s: 120.0,
        seed: 9,
        simulate_oom_above_bytes: None,
        simulate_slow_steps: Vec::new(),
    }
}

/// Swap counters that a test scripts: the host has `swap_total_bytes` of swap and swaps
/// `PAGES_SWAPPED` pages out during step `swap_during` (1 for the first), none otherwise.
struct ScriptedSwap {
    swap_total_bytes: u64,
    swap_during: Option<u32>,
    reads: u32,
    pages_out: u64,
}

const PAGES_SWAPPED: u64 = 500;

impl ScriptedSwap {
    fn new(swap_total_bytes: u64, swap_during: Option<u32>) -> ScriptedSwap {
        ScriptedSwap {
            swap_total_bytes,
            swap_during,
            reads: 0,
            pages_out: 0,
        }
    }
}

impl SwapCounters for ScriptedSwap {
    fn source(&self) -> Option<String> {
        Some("scripted".to_owned())
    }
    fn sample(&mut self) -> Option<SwapSample> {
        // The stage reads twice a step: before it (odd reads) and after it (even reads).
        self.reads += 1;
        if self.reads.is_multiple_of(2) && Some(self.reads / 2) == self.swap_during {
            self.pages_out += PAGES_SWAPPED;
        }
        Some(SwapSample {
            pages_out: self.pages_out,
            pages_in: 0,
            swap_total_bytes: Some(self.swap_total_bytes),
            mem_available_bytes: Some(1 << 30),
        })
    }
}

/// The allocation stage with steps `slow` (1 for the first) timed as if the host slowed them.
fn allocation_with(
    slow: &[u32],
    counters: &mut dyn SwapCounters,
) -> headroom_core::report::AllocationResult {
    let g = gpu();
    let p = AllocationParams {
        simulate_slow_steps: slow.to_vec(),
        ..allocation_params()
    };
    pollster::block_on(allocation::run(
        &g.device,
        &g.queue,
        &p,
        counters,
        &mut |_| {},
    ))
    .expect("fill kernels")
}

const SWAP_ON_BYTES: u64 = 8 << 30;

#[test]
fn a_slow_step_without_swap_outs_is_contention_and_the_stage_goes_on() {
    // A busy CPU slowed step 3; the host swapped nothing out.
    let r = allocation_with(&[3], &mut ScriptedSwap::new(SWAP_ON_BYTES, None));
    assert_eq!(r.stop_reason, AllocationStopReason::Budget, "{r:?}");
    assert_eq!(r.steps.len(), 5, "{r:?}");
    assert_eq!(r.largest_clean_bytes, 20 * MIB);
    assert_eq!(r.swap_counters.as_deref(), Some("scripted"));
    let slow = &r.steps[2];
    assert!(slow.step_s >= allocation::SIMULATED_SLOW_STEP_S, "{slow:?}");
    assert_eq!(slow.pages_swapped_out, Some(0));
    assert!(
        slow.note.as_deref().is_some_and(
            |n| n.contains("slow step, no pages swapped out: contention, not swapping")
        ),
        "{slow:?}"
    );
    assert!(
        r.stop_detail
            .contains("1 slow step(s) were not the swap knee"),
        "{}",
        r.stop_detail
    );
    assert!(r.steps.iter().all(|s| s.pages_swapped_out == Some(0)));
}

#[test]
fn a_slow_step_with_swap_outs_is_the_knee() {
    let r = allocation_with(&[3], &mut ScriptedSwap::new(SWAP_ON_BYTES, Some(3)));
    assert_eq!(r.stop_reason, AllocationStopReason::Swapping, "{r:?}");
    assert_eq!(r.steps.len(), 3, "{r:?}");
    assert_eq!(r.steps[2].pages_swapped_out, Some(PAGES_SWAPPED));
    assert!(
        r.stop_detail.contains("swapped out 500 pages"),
        "{}",
        r.stop_detail
    );
    // Two steps of 4 MiB held cleanly before the knee.
    assert_eq!(r.largest_clean_bytes, 8 * MIB);
}

#[test]
fn swap_outs_during_an_ordinary_step_are_recorded_but_not_the_knee() {
    let r = allocation_with(&[], &mut ScriptedSwap::new(SWAP_ON_BYTES, Some(3)));
    assert_eq!(r.stop_reason, AllocationStopReason::Budget, "{r:?}");
    assert_eq!(r.steps[2].pages_swapped_out, Some(PAGES_SWAPPED));
}

#[test]
fn with_swap_off_slow_steps_never_make_a_knee() {
    let r = allocation_with(&[3, 4, 5], &mut ScriptedSwap::new(0, None));
    assert_eq!(r.stop_reason, AllocationStopReason::Budget, "{r:?}");
    assert_eq!(r.largest_clean_bytes, 20 * MIB);
    assert!(
        r.steps[2..]
            .iter()
            .all(|s| s.note.as_deref().is_some_and(|n| n.contains("swap is off"))),
        "{r:?}"
    );
}

#[test]
fn without_counters_one_slow_step_is_not_the_knee() {
    let r = allocation_with(&[3], &mut NoSwapCounters);
    assert_eq!(r.stop_reason, AllocationStopReason::Budget, "{r:?}");
    assert_eq!(r.largest_clean_bytes, 20 * MIB);
    assert_eq!(r.swap_counters, None);
    assert!(r.steps.iter().all(|s| s.pages_swapped_out.is_none()));
    assert!(
        r.steps[2]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("the next step was not slow")),
        "{r:?}"
    );
}

#[test]
fn without_counters_two_slow_steps_in_a_row_are_the_knee() {
    let r = allocation_with(&[3, 4], &mut NoSwapCounters);
    assert_eq!(r.stop_reason, AllocationStopReason::Swapping, "{r:?}");
    assert_eq!(r.steps.len(), 4, "{r:?}");
    assert!(
        r.stop_detail.contains("second slow step in a row"),
        "{}",
        r.stop_detail
    );
    // The knee began at the first slow step: only the two before it were clean.
    assert_eq!(r.largest_clean_bytes, 8 * MIB);
}

#[test]
fn without_counters_a_slow_last_step_is_not_counted_clean() {
    // Step 5 is the last the budget allows: nothing can confirm or clear it.
    let r = allocation_with(&[5], &mut NoSwapCounters);
    assert_eq!(r.stop_reason, AllocationStopReason::Budget, "{r:?}");
    assert_eq!(r.largest_clean_bytes, 16 * MIB);
    assert!(
        r.steps[4]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("ended before a next step could confirm it")),
        "{r:?}"
    );
}

#[test]
fn allocation_stops_at_the_budget() {
    let g = gpu();
    let r = pollster::block_on(allocation::run(
        &g.device,
        &g.queue,
        &allocation_params(),
        &mut NoSwapCounters,
        &mut |_| {},
    ))
    .expect("fill kernels");
    assert_eq!(r.stop_reason, AllocationStopReason::Budget, "{r:?}");
    // Steps of 4 MiB (2 Mi params × 2 bytes) up to the 20 MiB budget: 5 steps.
    assert_eq!(r.steps.len(), 5, "{r:?}");
    assert!(r.steps.iter().all(|s| s.ok && s.total_bytes <= 20 * MIB));
    assert_eq!(r.largest_clean_bytes, 20 * MIB);
}

#[test]
fn allocation_records_a_simulated_out_of_memory() {
    let g = gpu();
    let p = AllocationParams {
        simulate_oom_above_bytes: Some(10 * MIB),
        ..allocation_params()
    };
    let mut steps = 0;
    let r = pollster::block_on(allocation::run(
        &g.device,
        &g.queue,
        &p,
        &mut NoSwapCounters,
        &mut |_| steps += 1,
    ))
    .expect("fill kernels");
    assert_eq!(r.stop_reason, AllocationStopReason::Error, "{r:?}");
    assert!(r.stop_detail.contains("out of memory"), "{}", r.stop_detail);
    let last = r.steps.last().expect("a failed step");
    assert!(!last.ok && last.error.is_some());
    // Every step, the failed one included, was handed out as it finished.
    assert_eq!(steps, r.steps.len());
    assert_eq!(r.largest_clean_bytes, 8 * MIB);
}

#[test]
fn decode_every_format_is_correct() {
    let g = gpu();
    for format in DecodeFormat::ALL {
        let p = DecodeParams {
            format,
            model_params: u64::from(HIDDEN) * 256,
            seed: 13,
            settings: MeasureSettings::ONCE,
            subgroup_size: None,
        };
        let m = pollster::block_on(decode::run(&g.device, &g.queue, &p));
        assert_ok(&m);
        assert!(m.tokens_per_s.is_some_and(|t| t > 0.0));
        let bytes = m.params["weight_bytes"].as_u64().expect("weight_bytes");
        let expected = (256.0 * f64::from(HIDDEN) * format.bytes_per_weight()) as u64;
        assert_eq!(bytes, expected, "{}", format.label());
        // Every rows-per-slot variant ran and passed its own check.
        let tuning = m.params["tuning"].as_array().expect("tuning");
        assert!(tuning.len() > 1, "{}", format.label());
        assert!(
            tuning.iter().all(|t| t["passed"] == true),
            "{}",
            format.label()
        );
        assert!(m.params["rows_per_slot"].as_u64().is_some());
        // The integer-dot kernels (native only) and q4_0's 16-row and 2-unit kernels ran.
        let has = |conversion: &str, rows: u64, units: u64| {
            tuning.iter().any(|t| {
                t["conversion"] == conversion
                    && t["rows_per_slot"] == rows
                    && t["units_per_step"] == units
            })
        };
        let int_dot = "int8 dot: x as int8 blocks, dot4I8Packed";
        match format {
            DecodeFormat::Q4_0 => {
                let factored = "float bits, offset factored per block";
                assert!(has(factored, 16, 1) && has(factored, 8, 2), "{tuning:?}");
                let shared = tuning
                    .iter()
                    .filter(|t| t["x_in_workgroup_memory"] == true)
                    .count();
                // x (16 KiB) plus the reduction's 1 KiB scratch must fit.
                let fits = g.adapter.limits().max_compute_workgroup_storage_size >= 17 * 1024;
                assert_eq!(shared, if fits { 2 } else { 0 }, "{tuning:?}");
                assert!(has(int_dot, 16, 1) && has(int_dot, 4, 4), "{tuning:?}");
            }
            DecodeFormat::Q8_0 => assert!(has(int_dot, 8, 2), "{tuning:?}"),
            DecodeFormat::F16 => assert!(!has(int_dot, 8, 1), "{tuning:?}"),
        }
    }
}

/// Runs a cooperative-matrix attention kernel in its emulated form (plain WGSL with the same
/// index algebra) on `heads` heads of `seq` rows; returns the f16 output as f32.
fn run_emulated(
    c: &CoopAttention,
    source: &str,
    heads: u32,
    seq: u32,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> Result<Vec<f32>, String> {
    let g = gpu();
    let gpu = Gpu::new(&g.device, &g.queue);
    let to16 = |x: &[f32]| -> Vec<u8> {
        let h: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
        bytemuck::cast_slice(&h).to_vec()
    };
    pollster::block_on(async {
        let pipeline = gpu
            .pipeline(&c.label(), source)
            .await
            .map_err(|e| e.to_string())?;
        let qb = gpu.storage_init("q", &to16(q));
        let kb = gpu.storage_init("k", &to16(k));
        let vb = gpu.storage_init("v", &to16(v));
        let ob = gpu.storage("o", (q.len() * 2) as u64);
        let [frag_bytes, s_bytes, p_bytes] = c.emulation_scratch_bytes(seq, heads);
        let frags = gpu.storage("fragments", frag_bytes);
        let s_scratch = gpu.storage("s scratch", s_bytes);
        let p_scratch = gpu.storage("p scratch", p_bytes);
        let scale_log2 = std::f32::consts::LOG2_E / (c.head_dim as f32).sqrt();
        let uniform = gpu.uniform(&[seq, scale_log2.to_bits(), 0, 0]);
        let bind = gpu.bind(
            &pipeline,
            &[
                (&qb, 0, None),
                (&kb, 0, None),
                (&vb, 0, None),
                (&ob, 0, None),
                (&uniform, 0, None),
                (&frags, 0, None),
                (&s_scratch, 0, None),
                (&p_scratch, 0, None),
            ],
        );
        gpu.clear(&ob);
        gpu.time_pass(&|pass| {
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(seq / c.query_block(), heads, 1);
        })
        .await
        .map_err(|e| e.to_string())?;
        let out = gpu
            .read_back(&ob, 0, (q.len() * 2) as u64)
            .await
            .map_err(|e| e.to_string())?;
        Ok(bytemuck::cast_slice::<u8, half::f16>(&out)
            .iter()
            .map(|x| x.to_f32())
            .collect())
    })
}

/// Relative Frobenius error of every row of every head against the f64 reference.
fn attention_error(
    out: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    seq: usize,
    d: usize,
    causal: bool,
) -> f64 {
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for h in 0..q.len() / (seq * d) {
        let off = h * seq * d;
        let r = off..off + seq * d;
        for row in 0..seq {
            want.extend(attention::reference_row(
                &q[r.clone()],
                &k[r.clone()],
                &v[r.clone()],
                seq,
                d,
                row,
                causal,
            ));
            got.extend(
                out[off + row * d..off + (row + 1) * d]
                    .iter()
                    .map(|&x| f64::from(x)),
            );
        }
    }
    headroom_probe::kernels::rel_frobenius(&got, &want)
}

fn round16(x: Vec<f32>) -> Vec<f32> {
    x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}

/// The coop kernels' index algebra, blocking, causal mask, lane split and lazy-rescale softmax,
/// run end to end on lavapipe through the emulated form (fragments as private arrays): every
/// variant that fits the adapter, every output row against the f64 reference. Two inputs:
/// random (no rescale after the first block) and growing keys (a rescale in most blocks).
#[test]
fn coop_attention_emulated_matches_the_reference() {
    let g = gpu();
    let limit = g.device.limits().max_compute_workgroup_storage_size;
    let mut ran = Vec::new();
    // Each (subgroups, key block) shape of the H200's subgroup size 32, with and without
    // prefetch, f16 tiles and subgroups of 16 on some: ~10-60 s of lavapipe compile each.
    // (head_dim, causal, subgroups, key block, f16 tiles, prefetch, subgroup size)
    let picks = [
        (64, false, 4, 32, false, false, 32),
        (64, false, 8, 32, false, false, 32),
        (64, false, 4, 64, false, false, 32),
        (64, false, 4, 32, true, false, 32),
        (64, false, 4, 64, false, true, 32),
        (64, true, 4, 32, false, false, 32),
        (64, true, 8, 32, false, true, 32),
        (64, true, 4, 64, false, false, 32),
        (64, true, 4, 32, false, false, 16),
        (128, false, 4, 32, false, false, 32),
        (128, false, 8, 32, false, true, 32),
        (128, false, 4, 32, true, true, 32),
        (128, true, 8, 32, false, false, 32),
        (128, true, 4, 32, false, true, 32),
        (128, true, 4, 32, true, false, 16),
    ];
    // CI runs four of them (lavapipe compiles the emulated kernels for 10-90 s each);
    // HEADROOM_COOP_EMULATION=all runs the whole list.
    let all = std::env::var("HEADROOM_COOP_EMULATION").is_ok_and(|v| v == "all");
    let ci_picks = [1usize, 4, 6, 14];
    let picks: Vec<_> = picks
        .iter()
        .enumerate()
        .filter(|(i, _)| all || ci_picks.contains(i))
        .map(|(_, p)| *p)
        .collect();
    let configs = picks.into_iter().map(
        |(head_dim, causal, subgroups, key_block, f16, prefetch, sg)| CoopAttention {
            head_dim,
            causal,
            key_block,
            subgroups,
            subgroup_size: sg,
            store: if f16 {
                TileStore::Half
            } else {
                TileStore::Vec4
            },
            prefetch,
            // A barrier's reach is not what the emulation checks (and subgroupBarrier needs
            // SUBGROUP_BARRIER, which the probe's device does not request).
            subgroup_sync: false,
            s_in_storage: false,
        },
    );
    let configs: Vec<CoopAttention> = configs.collect();
    let configs_len = configs.len();
    for c in configs {
        let (head_dim, causal, sg) = (c.head_dim, c.causal, c.subgroup_size);
        {
            {
                {
                    let seq = 2 * c.query_block();
                    if c.unsupported(seq).is_some() || c.emulation_shared_bytes() > limit {
                        eprintln!(
                            "{} d{head_dim} sg{sg}: does not fit this adapter, not run",
                            c.label()
                        );
                        continue;
                    }
                    let (heads, d, s) = (2u32, head_dim as usize, seq as usize);
                    let n = heads as usize * s * d;
                    let mut rng = headroom_probe::Rng::new(5 + u64::from(head_dim));
                    let q = round16(rng.vec_f32(n));
                    let k = round16(rng.vec_f32(n));
                    let v = round16(rng.vec_f32(n));
                    // Growing keys: row j of each head scaled by 1 + j/8, queries made positive,
                    // so each block's scores lead the previous ones by several log2 units.
                    let qg = round16(q.iter().map(|x| x.abs()).collect());
                    let kg = round16(
                        k.iter()
                            .enumerate()
                            .map(|(i, x)| x.abs() * (1.0 + ((i / d) % s) as f32 / 8.0))
                            .collect(),
                    );
                    let (_, rescales) = attention_coop::simulate_row(
                        &qg,
                        &kg,
                        &v,
                        d,
                        s - 1,
                        s,
                        causal,
                        c.key_block as usize,
                    );
                    assert!(rescales > 0, "the growing input must exercise the rescale");
                    for (what, qq, kk) in [("random", &q, &k), ("growing", &qg, &kg)] {
                        let t0 = std::time::Instant::now();
                        let out = run_emulated(&c, &c.emulated_wgsl(), heads, seq, qq, kk, &v)
                            .unwrap_or_else(|e| panic!("{} d{head_dim} sg{sg}: {e}", c.label()));
                        let err = attention_error(&out, qq, kk, &v, s, d, causal);
                        assert!(
                            err <= 5e-3,
                            "{} d{head_dim} causal {causal} sg{sg} {what}: rel err {err:.3e}",
                            c.label()
                        );
                        eprintln!(
                            "{} d{head_dim} causal {causal} sg{sg} {what}: rel err {err:.2e}, {:.1} s",
                            c.label(),
                            t0.elapsed().as_secs_f64()
                        );
                    }
                    ran.push(format!("{} d{head_dim} causal {causal} sg{sg}", c.label()));
                }
            }
        }
    }
    eprintln!("emulated coop attention variants checked: {ran:#?}");
    assert_eq!(
        ran.len(),
        configs_len,
        "not every picked variant fits this adapter: ran {ran:?}"
    );
}
