//! Memory bandwidth: read (a reduction whose sums are checked), write (a fill whose contents are
//! checked), copy (checked word for word). Each result states which bytes it counts: read and
//! write count the bytes moved once; copy counts bytes read + bytes written.
//!
//! Buffers larger than one storage binding (≤ 2 GiB − 4 everywhere) are bound in pieces.
//!
//! Write also times the driver's own buffer fill (`clear_buffer`: `vkCmdFillBuffer` on Vulkan)
//! over the same buffer in the same run, reported beside it as `params.driver_fill`: on the
//! H100 through Vulkan both stop at about 3.13 TB/s where CUDA's fill reaches 3.30 (BENCHMARKS.md).

use headroom_core::report::{BandwidthMetric, Measurement, Metric, Status, Verification};

use std::collections::BTreeMap;

use crate::gpu::{Gpu, Measured, pieces, scoped, workgroups_for};
use crate::kernels::fill::{Fill, Filler};
use crate::kernels::{BINDING_ALIGN_BYTES, GIB, MeasureSettings, failed, wgsl_template};
use crate::pattern::{pattern, piece_seed};
use crate::{ProbeError, params};

/// One launch shape: invocations per workgroup, independent vec4 accesses in flight per loop
/// step, vec4 words per invocation (which sets the grid size), and how the grid covers the
/// buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    workgroup_size: u32,
    unroll: u32,
    vec4_per_invocation: u64,
    /// How the grid covers the buffer.
    grid: Grid,
    /// A fixed number of workgroups per dispatch (grid-stride kernels only) instead of one per
    /// `workgroup_size · vec4_per_invocation` words.
    fixed_workgroups: Option<u64>,
}

/// How a kernel's invocations cover a piece (write only tries the others: issue 6, write at
/// 93% of PyTorch's `fill_` with every grid-stride shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grid {
    /// A 1-D grid of `vec4_per_invocation` words per invocation (capped at the adapter's
    /// workgroups per dimension), a grid-stride loop unrolled `unroll` times; one dispatch per
    /// binding piece.
    Stride,
    /// No loop: a 2-D grid with exactly `vec4_per_invocation` words per invocation, each
    /// workgroup writing one contiguous run of `workgroup_size · vec4_per_invocation` words
    /// (invocation `i` at `i`, `i + workgroup_size`, …), as PyTorch's vectorized elementwise
    /// kernels do; one dispatch per binding piece.
    Flat,
    /// [`Grid::Flat`], but every binding piece is bound at once (at least two bindings, at most
    /// [`MAX_JOINED_BINDINGS`]) and one dispatch writes word `k` of every piece: one dispatch
    /// per repetition, so no barrier between pieces.
    JoinedFlat,
    /// [`Grid::Stride`] with every piece bound at once, as in [`Grid::JoinedFlat`]: one
    /// dispatch per repetition, each invocation storing to every piece per loop step.
    JoinedStride,
}

/// Most pieces one joined dispatch binds (WebGPU guarantees 8 storage buffers per stage).
const MAX_JOINED_BINDINGS: usize = 4;
/// Workgroup counts tried as a fixed, persistent grid: multiples of 132, the SM count of the
/// H100 SXM and H200 (NVIDIA Hopper architecture whitepaper), at 8 and 16 resident
/// 256-invocation workgroups per SM (2048 threads per SM on Hopper, CUDA C Programming Guide,
/// compute capability 9.0); on other GPUs these are just two more grid sizes.
const PERSISTENT_WORKGROUPS: [u64; 2] = [132 * 8, 132 * 16];

const fn stride(workgroup_size: u32, unroll: u32, vec4_per_invocation: u64) -> Shape {
    Shape {
        workgroup_size,
        unroll,
        vec4_per_invocation,
        grid: Grid::Stride,
        fixed_workgroups: None,
    }
}

const fn flat(grid: Grid, workgroup_size: u32, vec4_per_invocation: u64) -> Shape {
    Shape {
        workgroup_size,
        unroll: 1,
        vec4_per_invocation,
        grid,
        fixed_workgroups: None,
    }
}

const fn persistent(grid: Grid, workgroups: u64) -> Shape {
    Shape {
        workgroup_size: 256,
        unroll: 4,
        vec4_per_invocation: 0,
        grid,
        fixed_workgroups: Some(workgroups),
    }
}

/// Write-only shapes beyond [`SHAPES`].
const WRITE_SHAPES: [Shape; 15] = [
    flat(Grid::Flat, 1024, 1),
    flat(Grid::JoinedFlat, 512, 2),
    flat(Grid::JoinedFlat, 1024, 1),
    flat(Grid::Flat, 256, 1),
    flat(Grid::Flat, 256, 2),
    // 128 invocations × 4 vec4: close to PyTorch's vectorized elementwise kernels (128-thread
    // blocks, a few 16-byte accesses per thread, no loop).
    flat(Grid::Flat, 128, 4),
    flat(Grid::Flat, 512, 2),
    flat(Grid::JoinedFlat, 256, 1),
    flat(Grid::JoinedFlat, 256, 2),
    flat(Grid::JoinedFlat, 128, 4),
    // The H200's fastest grid-stride write shape, with both pieces in one dispatch.
    Shape {
        grid: Grid::JoinedStride,
        ..stride(1024, 4, 4)
    },
    persistent(Grid::Stride, PERSISTENT_WORKGROUPS[0]),
    persistent(Grid::Stride, PERSISTENT_WORKGROUPS[1]),
    persistent(Grid::JoinedStride, PERSISTENT_WORKGROUPS[0]),
    persistent(Grid::JoinedStride, PERSISTENT_WORKGROUPS[1]),
];

/// Shapes tried at run time for every kind; the fastest verified one is re-measured and
/// reported (the tuned choice and every trial are in `params`). FACTS.md: vec4 loads, several
/// loads in flight.
const SHAPES: [Shape; 6] = [
    stride(256, 4, 16),
    stride(256, 8, 8),
    stride(512, 4, 8),
    stride(256, 8, 32),
    stride(1024, 4, 4),
    stride(128, 8, 16),
];
/// Trials last this fraction of the final measurement's target time.
const TRIAL_TIME_FRACTION: f64 = 0.25;
/// Largest piece bound at once: the adapter's binding limit, but under 4 GiB so vec4 and
/// word indices fit in u32.
const MAX_PIECE_BYTES: u64 = 4 * GIB - BINDING_ALIGN_BYTES;
/// Bytes read back per piece to check the write kernel (start, middle and end windows).
const WRITE_CHECK_WINDOW_BYTES: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Read,
    Write,
    Copy,
}

/// Loop of `unroll` independent accesses `ACCESS(j)` at `i + j·s`, then a remainder loop.
fn grid_loop(unroll: u32, access: &dyn Fn(&str) -> String) -> String {
    let mut body = String::new();
    for j in 0..unroll {
        body += &format!("        {}\n", access(&format!("i + {j}u * s")));
    }
    format!(
        "    var i = gid.x;\n    while (i + {last}u * s < p.n_vec4) {{\n{body}        i += {unroll}u * s;\n    }}\n    while (i < p.n_vec4) {{\n        {rest}\n        i += s;\n    }}\n",
        last = unroll - 1,
        rest = access("i"),
    )
}

/// Body of the write kernels without a loop: `vec4_per_invocation` words per invocation, each
/// workgroup one contiguous run. `store(k)` stores word `k` (bounds-checked inside).
fn flat_body(shape: Shape, store: &dyn Fn(&str) -> String) -> String {
    let wg = shape.workgroup_size;
    let mut body = format!(
        "    let base = (wid.y * nwg.x + wid.x) * {}u + lid;\n",
        u64::from(wg) * shape.vec4_per_invocation
    );
    for m in 0..shape.vec4_per_invocation {
        body += &format!(
            "    {{ let k = base + {}u; {} }}\n",
            m * u64::from(wg),
            store("k")
        );
    }
    body
}

/// The write kernel at a shape of [`WRITE_SHAPES`] binding `bindings` pieces at once (1 unless
/// the grid is joined). Word `w` of a piece holds `w ^ seed` of that piece.
fn write_wgsl(shape: Shape, bindings: usize) -> String {
    let wg = shape.workgroup_size;
    let entry = wgsl_template(
        include_str!("wgsl/bandwidth_write_entry.wgsl"),
        &[("WORKGROUP_SIZE", &wg)],
    );
    if !shape.grid.joined() {
        let store = |at: &str| {
            format!(
                "if ({at} < p.n_vec4) {{ dst[{at}] = (vec4<u32>({at} * 4u) + lane) ^ vec4<u32>(p.seed); }}"
            )
        };
        let body = if shape.grid.flat() {
            flat_body(shape, &store)
        } else {
            let plain = |at: &str| {
                format!(
                    "{{ let k = {at}; dst[k] = (vec4<u32>(k * 4u) + lane) ^ vec4<u32>(p.seed); }}"
                )
            };
            format!("    let s = p.stride;\n{}", grid_loop(shape.unroll, &plain))
        };
        return wgsl_template(
            include_str!("wgsl/bandwidth_write.wgsl"),
            &[("ENTRY", &entry), ("BODY", &body)],
        );
    }
    let mut decls = String::new();
    for j in 0..bindings {
        decls += &format!(
            "@group(0) @binding({j}) var<storage, read_write> dst{j}: array<vec4<u32>>;\n"
        );
    }
    // Word k of every piece (piece 0 is the largest).
    let store = |at: &str| {
        (0..bindings)
            .map(|j| {
                format!("if ({at} < p.n[{j}]) {{ dst{j}[{at}] = (vec4<u32>({at} * 4u) + lane) ^ vec4<u32>(p.seed[{j}]); }}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let body = if shape.grid.flat() {
        flat_body(shape, &store)
    } else {
        let each = |at: &str| format!("{{ let k = {at}; {} }}", store("k"));
        format!("    let s = p.stride;\n{}", grid_loop(shape.unroll, &each))
            .replace("p.n_vec4", "p.n[0]")
    };
    wgsl_template(
        include_str!("wgsl/bandwidth_write_joined.wgsl"),
        &[
            ("DECLS", &decls),
            ("BINDINGS", &bindings),
            ("ENTRY", &entry),
            ("BODY", &body),
        ],
    )
}

fn wgsl(kind: Kind, shape: Shape, bindings: usize) -> String {
    let unroll = shape.unroll;
    // `unroll` independent loads first (all in flight), then what is done with them.
    let loads: String = (0..unroll)
        .map(|j| format!("        let v{j} = src[i + {j}u * s];\n"))
        .collect();
    let (template, name, uses): (&str, &str, String) = match kind {
        Kind::Read => (
            include_str!("wgsl/bandwidth_read.wgsl"),
            "ADDS",
            (0..unroll)
                .map(|j| format!("        acc += v{j};\n"))
                .collect(),
        ),
        Kind::Write => return write_wgsl(shape, bindings),
        Kind::Copy => (
            include_str!("wgsl/bandwidth_copy.wgsl"),
            "STORES",
            (0..unroll)
                .map(|j| format!("        dst[i + {j}u * s] = v{j};\n"))
                .collect(),
        ),
    };
    wgsl_template(
        template,
        &[
            ("WORKGROUP_SIZE", &shape.workgroup_size),
            ("LAST", &(unroll - 1)),
            ("UNROLL", &unroll),
            ("LOADS", &loads),
            (name, &uses),
        ],
    )
}

/// Inputs to the bandwidth stage.
#[derive(Debug, Clone, PartialEq)]
pub struct BandwidthParams {
    /// Size of each of the two buffers, bytes (a multiple of 256).
    pub size_bytes: u64,
    /// Seed of the data.
    pub seed: u32,
    /// Measurement length.
    pub settings: MeasureSettings,
}

struct Piece {
    offset: u64,
    size: u64,
    seed: u32,
    groups: u32,
    groups_y: u32,
    uniform: wgpu::Buffer,
}

fn measurement(
    name: Metric,
    counted: &str,
    bytes_per_iter: f64,
    measured: &Measured,
    check: Verification,
    params: BTreeMap<String, serde_json::Value>,
) -> Measurement {
    let passed = check.passed;
    Measurement {
        name,
        status: if passed { Status::Ok } else { Status::Failed },
        error: (!passed).then(|| {
            format!(
                "wrong result: {} of {} checked words differ",
                check.rel_error * check.checked_elements as f64,
                check.checked_elements
            )
        }),
        params,
        timing: Some(measured.timing()),
        bytes_per_s: passed.then(|| bytes_per_iter / measured.per_iter_s()),
        bytes_counted: Some(counted.to_owned()),
        verification: Some(check),
        flops_per_s: None,
        tokens_per_s: None,
        accumulator: None,
    }
}

fn exact(mismatches: u64, checked: u64, reference: &str) -> Verification {
    Verification {
        passed: mismatches == 0,
        rel_error: if checked == 0 {
            0.0
        } else {
            mismatches as f64 / checked as f64
        },
        tolerance: 0.0,
        checked_elements: checked,
        reference: reference.to_owned(),
    }
}

/// Runs read, write and copy. Returns the three measurements (failed ones with their error).
pub async fn run(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    p: &BandwidthParams,
) -> Vec<Measurement> {
    let gpu = Gpu::new(device, queue);
    let names = BandwidthMetric::ALL.map(Metric::Bandwidth);
    // NVIDIA's Vulkan driver caps one buffer at 4 GiB − 2 MiB: take what the adapter allows.
    let size =
        p.size_bytes.min(gpu.limits.max_buffer_size) / BINDING_ALIGN_BYTES * BINDING_ALIGN_BYTES;
    let base = params! { "buffer_bytes" => size };
    if size == 0 {
        let err = ProbeError::Unsupported(format!(
            "no buffer fits: asked for {} bytes, the adapter's max_buffer_size is {}",
            p.size_bytes, gpu.limits.max_buffer_size
        ));
        return names
            .iter()
            .map(|&n| failed(n, base.clone(), &err))
            .collect();
    }
    let result = scoped(&gpu, "bandwidth", run_inner(&gpu, size, p)).await;
    match result {
        Ok(measurements) => measurements,
        Err(err) => names
            .iter()
            .map(|&n| failed(n, base.clone(), &err))
            .collect(),
    }
}

/// Dispatch pieces of `size` bytes: as few as the binding limit allows, of equal size (one
/// dispatch per piece per repetition, so fewer pieces mean fewer barriers between dispatches).
fn dispatch_pieces(gpu: &Gpu<'_>, size: u64) -> Vec<(u64, u64)> {
    let limit = MAX_PIECE_BYTES.min(gpu.limits.max_storage_buffer_binding_size);
    let count = size.div_ceil(limit.max(1));
    let piece = size.div_ceil(count.max(1)).div_ceil(BINDING_ALIGN_BYTES) * BINDING_ALIGN_BYTES;
    pieces(
        size,
        piece.min(limit / BINDING_ALIGN_BYTES * BINDING_ALIGN_BYTES),
        BINDING_ALIGN_BYTES,
    )
}

impl Grid {
    /// Whether every piece is bound in one dispatch.
    fn joined(self) -> bool {
        matches!(self, Grid::JoinedFlat | Grid::JoinedStride)
    }

    /// Whether the kernel has no loop (one 2-D grid over the piece).
    fn flat(self) -> bool {
        matches!(self, Grid::Flat | Grid::JoinedFlat)
    }

    /// Name in `params.tuning`.
    fn label(self) -> &'static str {
        match self {
            Grid::Stride => "grid-stride, one dispatch per piece",
            Grid::Flat => "flat 2-D grid, one dispatch per piece",
            Grid::JoinedFlat => "flat 2-D grid, all pieces in one dispatch",
            Grid::JoinedStride => "grid-stride, all pieces in one dispatch",
        }
    }
}

/// Binding pieces of `shape`: [`dispatch_pieces`], except that a joined kernel always binds
/// at least two (so a small buffer still runs the multi-binding code it runs on a large one).
fn shape_pieces(gpu: &Gpu<'_>, size: u64, shape: Shape) -> Vec<(u64, u64)> {
    let base = dispatch_pieces(gpu, size);
    if shape.grid.joined() && base.len() < 2 {
        let half = (size / 2).div_ceil(BINDING_ALIGN_BYTES) * BINDING_ALIGN_BYTES;
        pieces(size, half, BINDING_ALIGN_BYTES)
    } else {
        base
    }
}

/// A 2-D grid (x, y) of at least `groups` workgroups, at most `max` per dimension: the fewest
/// rows, and the groups spread evenly over them. 65,536 groups are 32,768 × 2, not 65,535 × 2
/// with 65,534 idle: those idle groups cost the H100 14% of its write bandwidth on a 1 GiB piece.
/// `None` if even `max` rows are too few.
fn grid_2d(groups: u64, max: u64) -> Option<(u32, u32)> {
    let max = max.max(1);
    let y = groups.div_ceil(max).max(1);
    let x = groups.div_ceil(y);
    (y <= max).then_some((x as u32, y as u32))
}

/// Workgroups (x, y) of one dispatch over `n_vec4` words.
fn dispatch_dims(gpu: &Gpu<'_>, n_vec4: u64, shape: Shape) -> Result<(u32, u32), ProbeError> {
    let max = u64::from(gpu.limits.max_compute_workgroups_per_dimension).max(1);
    if shape.grid.flat() {
        let per_group = u64::from(shape.workgroup_size) * shape.vec4_per_invocation.max(1);
        let groups = n_vec4.div_ceil(per_group).max(1);
        grid_2d(groups, max).ok_or_else(|| {
            ProbeError::Unsupported(format!("{groups} workgroups exceed a {max} × {max} grid"))
        })
    } else {
        let groups = match shape.fixed_workgroups {
            Some(groups) => groups.clamp(1, max) as u32,
            None => workgroups_for(
                n_vec4.div_ceil(shape.vec4_per_invocation.max(1)),
                shape.workgroup_size,
                gpu.limits.max_compute_workgroups_per_dimension,
            ),
        };
        Ok((groups, 1))
    }
}

/// Whether `shape` can run on this device at `size`: workgroup size within the limits (WebGPU's
/// defaults allow 256 invocations), joined pieces within the storage-binding limit, a flat grid
/// within the workgroup-count limits.
fn usable(gpu: &Gpu<'_>, size: u64, shape: Shape) -> bool {
    let limits = &gpu.limits;
    if shape.workgroup_size > limits.max_compute_invocations_per_workgroup
        || shape.workgroup_size > limits.max_compute_workgroup_size_x
    {
        return false;
    }
    let parts = shape_pieces(gpu, size, shape);
    if shape.grid.joined()
        && (parts.len() > MAX_JOINED_BINDINGS
            || parts.len() as u64 > u64::from(limits.max_storage_buffers_per_shader_stage))
    {
        return false;
    }
    parts
        .iter()
        .all(|&(_, piece)| dispatch_dims(gpu, piece / 16, shape).is_ok())
}

/// Workgroup size of the write check.
const WRITE_CHECK_WORKGROUP_SIZE: u32 = 256;
/// Vec4 words per invocation of the write check (grid-stride, under the dispatch limit).
const WRITE_CHECK_VEC4_PER_INVOCATION: u64 = 16;

/// Counts the vec4 words of a piece that differ from what the write kernel stores.
fn write_check_wgsl() -> String {
    wgsl_template(
        include_str!("wgsl/write_check.wgsl"),
        &[("WORKGROUP_SIZE", &WRITE_CHECK_WORKGROUP_SIZE)],
    )
}

/// Everything a trial of one kernel at one shape needs.
struct Bench<'a> {
    gpu: &'a Gpu<'a>,
    filler: &'a Filler,
    src: &'a wgpu::Buffer,
    dst: &'a wgpu::Buffer,
    partial: &'a wgpu::Buffer,
    write_check: wgpu::ComputePipeline,
    size: u64,
    seed: u32,
    expected_sum: u32,
}

impl Bench<'_> {
    /// Times `kind` at `shape` for `target_s` and checks its output (the destination is cleared
    /// first, so a kernel that writes nothing fails).
    async fn trial(
        &self,
        kind: Kind,
        shape: Shape,
        target_s: f64,
        max_iterations: u32,
    ) -> Result<(Measured, Verification), ProbeError> {
        let gpu = self.gpu;
        let label = format!(
            "bandwidth {kind:?} {:?} wg{} x{} v{} groups {:?}",
            shape.grid,
            shape.workgroup_size,
            shape.unroll,
            shape.vec4_per_invocation,
            shape.fixed_workgroups
        );
        let piece_list = shape_pieces(gpu, self.size, shape);
        let pipeline = gpu
            .pipeline(&label, &wgsl(kind, shape, piece_list.len()))
            .await?;
        let mut partial_words = 0u32;
        let mut parts = Vec::new();
        for (index, (offset, piece)) in piece_list.into_iter().enumerate() {
            let n_vec4 = piece / 16;
            let (groups, groups_y) = dispatch_dims(gpu, n_vec4, shape)?;
            let stride = groups * shape.workgroup_size;
            let seed = piece_seed(self.seed, index as u32);
            let uniform = gpu.uniform(&[n_vec4 as u32, seed, stride, partial_words]);
            partial_words += groups * groups_y;
            parts.push(Piece {
                offset,
                size: piece,
                seed,
                groups,
                groups_y,
                uniform,
            });
        }
        // (bind group, workgroups x, workgroups y) per dispatch of one repetition.
        let dispatches: Vec<(wgpu::BindGroup, u32, u32)> = if shape.grid.joined() {
            // One uniform for all pieces: sizes, seeds (padded to 4), stride; piece 0 is the
            // largest and sets the grid.
            let mut words = [0u32; 12];
            for (j, pc) in parts.iter().enumerate() {
                words[j] = (pc.size / 16) as u32;
                words[4 + j] = pc.seed;
            }
            let (groups, groups_y) = parts.first().map_or((1, 1), |pc| (pc.groups, pc.groups_y));
            words[8] = groups * shape.workgroup_size;
            let uniform = gpu.uniform(&words);
            let mut entries: Vec<(&wgpu::Buffer, u64, Option<u64>)> = parts
                .iter()
                .map(|pc| (self.dst, pc.offset, Some(pc.size)))
                .collect();
            entries.push((&uniform, 0, None));
            vec![(gpu.bind(&pipeline, &entries), groups, groups_y)]
        } else {
            parts
                .iter()
                .map(|pc| {
                    let bind = match kind {
                        Kind::Read => gpu.bind(
                            &pipeline,
                            &[
                                (self.src, pc.offset, Some(pc.size)),
                                (self.partial, 0, None),
                                (&pc.uniform, 0, None),
                            ],
                        ),
                        Kind::Write => gpu.bind(
                            &pipeline,
                            &[(self.dst, pc.offset, Some(pc.size)), (&pc.uniform, 0, None)],
                        ),
                        Kind::Copy => gpu.bind(
                            &pipeline,
                            &[
                                (self.src, pc.offset, Some(pc.size)),
                                (self.dst, pc.offset, Some(pc.size)),
                                (&pc.uniform, 0, None),
                            ],
                        ),
                    };
                    (bind, pc.groups, pc.groups_y)
                })
                .collect()
        };
        gpu.clear(if kind == Kind::Read {
            self.partial
        } else {
            self.dst
        });
        let record = |pass: &mut wgpu::ComputePass<'_>, reps: u32| {
            pass.set_pipeline(&pipeline);
            for _ in 0..reps {
                for (bind, x, y) in &dispatches {
                    pass.set_bind_group(0, bind, &[]);
                    pass.dispatch_workgroups(*x, *y, 1);
                }
            }
        };
        let measured = gpu.measure(&record, target_s, max_iterations).await?;
        let check = match kind {
            Kind::Read => {
                let sums = gpu
                    .read_back(self.partial, 0, u64::from(partial_words) * 4)
                    .await?;
                let got = bytemuck::cast_slice::<u8, u32>(&sums)
                    .iter()
                    .fold(0u32, |acc, &x| acc.wrapping_add(x));
                let ok = got == self.expected_sum;
                Verification {
                    passed: ok,
                    rel_error: if ok { 0.0 } else { 1.0 },
                    tolerance: 0.0,
                    checked_elements: self.size / 4,
                    reference: format!(
                        "wrapping u32 sum of every word, recomputed on the CPU (got {got:#x}, expected {:#x})",
                        self.expected_sum
                    ),
                }
            }
            Kind::Write => {
                let mut bad = 0u64;
                let mut checked = 0u64;
                for pc in &parts {
                    let window = WRITE_CHECK_WINDOW_BYTES.min(pc.size);
                    for at in [0, (pc.size / 2) / 16 * 16, pc.size - window] {
                        let bytes = gpu.read_back(self.dst, pc.offset + at, window).await?;
                        for (j, &w) in bytemuck::cast_slice::<u8, u32>(&bytes).iter().enumerate() {
                            let index = (at / 4) as u32 + j as u32;
                            checked += 1;
                            if w != index ^ pc.seed {
                                bad += 1;
                            }
                        }
                    }
                }
                // Every word on the GPU too: a grid that misses a region between the windows
                // (the flat 2-D grids' rows) fails.
                let counter = gpu.storage_init("write mismatches", &[0u8; 16]);
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                let binds: Vec<(wgpu::BindGroup, u32)> = parts
                    .iter()
                    .map(|pc| {
                        let n_vec4 = pc.size / 16;
                        let groups = workgroups_for(
                            n_vec4.div_ceil(WRITE_CHECK_VEC4_PER_INVOCATION),
                            WRITE_CHECK_WORKGROUP_SIZE,
                            gpu.limits.max_compute_workgroups_per_dimension,
                        );
                        let uniform = gpu.uniform(&[
                            n_vec4 as u32,
                            pc.seed,
                            groups * WRITE_CHECK_WORKGROUP_SIZE,
                            0,
                        ]);
                        let bind = gpu.bind(
                            &self.write_check,
                            &[
                                (self.dst, pc.offset, Some(pc.size)),
                                (&counter, 0, None),
                                (&uniform, 0, None),
                            ],
                        );
                        (bind, groups)
                    })
                    .collect();
                {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&self.write_check);
                    for (bind, groups) in &binds {
                        pass.set_bind_group(0, bind, &[]);
                        pass.dispatch_workgroups(*groups, 1, 1);
                    }
                }
                gpu.queue.submit([encoder.finish()]);
                let counted = gpu.read_back(&counter, 0, 16).await?;
                bad += u64::from(bytemuck::cast_slice::<u8, u32>(&counted)[0]);
                checked += self.size / 16;
                exact(
                    bad,
                    checked,
                    "every 16-byte word of each piece checked on the GPU, and start, middle and end windows read back and compared on the CPU",
                )
            }
            Kind::Copy => {
                let mismatches = self
                    .filler
                    .check(gpu, self.dst, 0, self.size, self.seed, Fill::Words)
                    .await?;
                exact(
                    mismatches,
                    self.size / 16,
                    "every 16-byte word of the destination checked on the GPU against the source pattern",
                )
            }
        };
        Ok((measured, check))
    }
}

impl Bench<'_> {
    /// Times the driver's own fill of the destination (`clear_buffer`, zeros), the write
    /// kernel's reference inside the probe; `{"skipped": why}` where commands outside passes
    /// cannot be timed on the GPU (the browser: WebGPU has no timestamps inside encoders).
    async fn driver_fill(
        &self,
        settings: &MeasureSettings,
        kernel_bytes_per_s: Option<f64>,
    ) -> Result<serde_json::Value, ProbeError> {
        if !self.gpu.times_commands() {
            return Ok(serde_json::json!({
                "skipped": "the adapter cannot time commands outside passes (no TIMESTAMP_QUERY_INSIDE_ENCODERS)",
            }));
        }
        let dst = self.dst;
        let record = |encoder: &mut wgpu::CommandEncoder, reps: u32| {
            for _ in 0..reps {
                encoder.clear_buffer(dst, 0, None);
            }
        };
        let measured = self
            .gpu
            .measure_commands(&record, settings.target_s, settings.max_iterations)
            .await?;
        let bytes_per_s = self.size as f64 / measured.per_iter_s();
        Ok(serde_json::json!({
            "what": "the driver's own fill of the same buffer (clear_buffer; vkCmdFillBuffer on Vulkan), bytes written",
            "bytes_per_s": bytes_per_s,
            "iterations": measured.iterations,
            "gpu_timestamp": measured.timed.gpu_timestamp,
            "kernel_ratio": kernel_bytes_per_s.map(|k| k / bytes_per_s),
        }))
    }
}

async fn run_inner(
    gpu: &Gpu<'_>,
    size: u64,
    p: &BandwidthParams,
) -> Result<Vec<Measurement>, ProbeError> {
    let filler = Filler::new(gpu).await?;
    let src = gpu.storage("bandwidth src", size);
    let dst = gpu.storage("bandwidth dst", size);
    // One word per workgroup; the most workgroups any shape launches.
    // WebGPU's default limits allow 256 invocations per workgroup: larger shapes are left out
    // where the device was created with those limits (the browser).
    let shapes: Vec<Shape> = SHAPES
        .into_iter()
        .filter(|&s| usable(gpu, size, s))
        .collect();
    let write_shapes: Vec<Shape> = shapes
        .iter()
        .copied()
        .chain(WRITE_SHAPES.into_iter().filter(|&s| usable(gpu, size, s)))
        .collect();
    let max_groups: u64 = shapes
        .iter()
        .map(|shape| {
            dispatch_pieces(gpu, size)
                .iter()
                .map(|&(_, piece)| {
                    u64::from(workgroups_for(
                        (piece / 16).div_ceil(shape.vec4_per_invocation),
                        shape.workgroup_size,
                        gpu.limits.max_compute_workgroups_per_dimension,
                    ))
                })
                .sum::<u64>()
        })
        .max()
        .unwrap_or(1);
    let partial = gpu.storage("bandwidth partial sums", max_groups * 4);
    // The source holds the fill pattern; its sum is recomputed here with the fill's pieces.
    filler.fill(gpu, &src, 0, size, p.seed, Fill::Words);
    let bench = Bench {
        gpu,
        filler: &filler,
        src: &src,
        dst: &dst,
        partial: &partial,
        write_check: gpu.pipeline("write check", &write_check_wgsl()).await?,
        size,
        seed: p.seed,
        expected_sum: expected_sum(gpu, size, p.seed),
    };
    let mut out = Vec::new();
    for (kind, name, counted, bytes_per_iter) in [
        (Kind::Read, BandwidthMetric::Read, "read", size as f64),
        (Kind::Write, BandwidthMetric::Write, "written", size as f64),
        (
            Kind::Copy,
            BandwidthMetric::Copy,
            "read + written",
            2.0 * size as f64,
        ),
    ] {
        let trial_s = p.settings.target_s * TRIAL_TIME_FRACTION;
        let mut trials = Vec::new();
        let mut best: Option<(Shape, f64)> = None;
        let mut all_passed = true;
        let kind_shapes = if kind == Kind::Write {
            &write_shapes
        } else {
            &shapes
        };
        for &shape in kind_shapes {
            let trial = bench
                .trial(kind, shape, trial_s, p.settings.max_iterations)
                .await;
            // A kernel the driver cannot compile is listed with its message and skipped (it
            // has no result, so it cannot be a wrong one).
            let (measured, check) = match trial {
                Ok(done) => done,
                Err(err @ ProbeError::Shader { .. }) => {
                    trials.push(serde_json::json!({
                        "workgroup_size": shape.workgroup_size, "unroll": shape.unroll,
                        "vec4_per_invocation": shape.vec4_per_invocation,
                        "grid": shape.grid.label(), "fixed_workgroups": shape.fixed_workgroups,
                        "compile_error": err.to_string(),
                    }));
                    continue;
                }
                Err(err) => return Err(err),
            };
            let bytes_per_s = bytes_per_iter / measured.per_iter_s();
            trials.push(serde_json::json!({
                "workgroup_size": shape.workgroup_size, "unroll": shape.unroll,
                "vec4_per_invocation": shape.vec4_per_invocation,
                "grid": shape.grid.label(), "fixed_workgroups": shape.fixed_workgroups,
                "bindings": shape_pieces(gpu, size, shape).len(),
                "bytes_per_s": bytes_per_s, "passed": check.passed,
            }));
            all_passed &= check.passed;
            if check.passed && best.is_none_or(|(_, b)| bytes_per_s > b) {
                best = Some((shape, bytes_per_s));
            }
        }
        let shape = best.map_or(SHAPES[0], |(shape, _)| shape);
        // The chosen shape is measured again for the full time (and checked again).
        let (measured, mut check) = bench
            .trial(kind, shape, p.settings.target_s, p.settings.max_iterations)
            .await?;
        if !all_passed {
            check.passed = false;
            check.rel_error = check
                .rel_error
                .max(1.0 / check.checked_elements.max(1) as f64);
            check.reference = format!(
                "{} (a tuning trial failed its check: see params.tuning)",
                check.reference
            );
        }
        let mut params = params! {
            "buffer_bytes" => size, "bytes_per_iteration" => bytes_per_iter,
            "workgroup_size" => shape.workgroup_size, "unroll" => shape.unroll,
            "vec4_per_invocation" => shape.vec4_per_invocation, "tuning" => trials,
            "grid" => shape.grid.label(), "fixed_workgroups" => shape.fixed_workgroups,
            "dispatches_per_iteration" => if shape.grid.joined() { 1 } else { shape_pieces(gpu, size, shape).len() },
        };
        if kind == Kind::Write {
            let kernel = check.passed.then(|| bytes_per_iter / measured.per_iter_s());
            params.insert(
                "driver_fill".to_owned(),
                bench.driver_fill(&p.settings, kernel).await?,
            );
        }
        out.push(measurement(
            Metric::Bandwidth(name),
            counted,
            bytes_per_iter,
            &measured,
            check,
            params,
        ));
    }
    Ok(out)
}

/// Wrapping sum of every word `Filler` wrote (its pieces: 1 GiB, or the binding limit).
fn expected_sum(gpu: &Gpu<'_>, size: u64, seed: u32) -> u32 {
    let fill_piece = gpu.limits.max_storage_buffer_binding_size.min(GIB);
    let mut sum = 0u32;
    for (index, (_, piece)) in pieces(size, fill_piece, BINDING_ALIGN_BYTES)
        .into_iter()
        .enumerate()
    {
        let piece_seed = piece_seed(seed, index as u32);
        for w in 0..(piece / 4) as u32 {
            sum = sum.wrapping_add(pattern(w, piece_seed));
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::grid_2d;

    #[test]
    fn a_flat_grid_spreads_its_groups_over_the_fewest_rows() {
        assert_eq!(grid_2d(1, 65_535), Some((1, 1)));
        assert_eq!(grid_2d(65_535, 65_535), Some((65_535, 1)));
        // One group over a row: two half rows, not a full row and a row of one.
        assert_eq!(grid_2d(65_536, 65_535), Some((32_768, 2)));
        // The H100's 2047 MiB write pieces.
        assert_eq!(grid_2d(131_008, 65_535), Some((65_504, 2)));
        assert_eq!(grid_2d(196_608, 65_535), Some((49_152, 4)));
        // Every grid covers its groups, with less than one row of idle groups.
        for groups in [2, 65_534, 65_537, 131_071, 1 << 24] {
            let (x, y) = grid_2d(groups, 65_535).expect("fits");
            let covered = u64::from(x) * u64::from(y);
            assert!(
                covered >= groups && covered - groups < u64::from(y),
                "{groups}: {x} × {y}"
            );
            assert!(x <= 65_535 && y <= 65_535);
        }
        assert_eq!(grid_2d(65_535 * 65_535 + 1, 65_535), None);
    }
}
