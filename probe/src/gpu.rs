//! Shared GPU plumbing for the kernels: pipelines, buffers, error scopes, read-back and timing.
//!
//! Everything here is `async` and identical natively and in the browser: read-back awaits
//! `map_async` (natively the device is polled first, so the await returns at once).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use wgpu::util::DeviceExt;

use crate::ProbeError;

/// Wall-clock seconds from an arbitrary origin (`Instant` natively, `Date.now()` in the browser,
/// where `Instant` is not available).
pub fn now_s() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64()
    }
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now() / 1e3
    }
}

/// A one-shot channel whose receiver is a future: what `map_async` callbacks report into.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

struct Receiver<T>(Arc<Mutex<Slot<T>>>);

impl<T> Future for Receiver<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = match self.0.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        match slot.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn oneshot<T>() -> (impl FnOnce(T) + Send + 'static, Receiver<T>)
where
    T: Send + 'static,
{
    let shared = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let sender = {
        let shared = shared.clone();
        move |value: T| {
            let mut slot = match shared.lock() {
                Ok(slot) => slot,
                Err(poisoned) => poisoned.into_inner(),
            };
            slot.value = Some(value);
            if let Some(waker) = slot.waker.take() {
                waker.wake();
            }
        }
    };
    (sender, Receiver(shared))
}

/// A device and queue plus what the kernels need to know about them.
pub struct Gpu<'a> {
    /// The device.
    pub device: &'a wgpu::Device,
    /// Its queue.
    pub queue: &'a wgpu::Queue,
    /// Its limits (as requested).
    pub limits: wgpu::Limits,
    /// Its enabled features.
    pub features: wgpu::Features,
    timestamps: Option<Timestamps>,
}

struct Timestamps {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    period_ns: f64,
}

/// How a measurement was timed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timed {
    /// Seconds the timed work took.
    pub seconds: f64,
    /// `true`: GPU timestamps; `false`: wall clock around submit and wait.
    pub gpu_timestamp: bool,
}

/// Share of a measurement's target time spent keeping the GPU busy before the timed run.
const WARM_UP_FRACTION: f64 = 0.25;

/// Bytes of one timestamp query result.
const TIMESTAMP_BYTES: u64 = 8;
/// Alignment wgpu requires for query resolve buffers and copies.
const QUERY_RESOLVE_ALIGNMENT: u64 = 256;

impl<'a> Gpu<'a> {
    /// Wraps a device; sets up timestamp queries if the device has `TIMESTAMP_QUERY`.
    pub fn new(device: &'a wgpu::Device, queue: &'a wgpu::Queue) -> Gpu<'a> {
        let features = device.features();
        let timestamps = features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| Timestamps {
                query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("probe timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                }),
                resolve: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamp resolve"),
                    size: QUERY_RESOLVE_ALIGNMENT,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                read: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamp read"),
                    size: QUERY_RESOLVE_ALIGNMENT,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                period_ns: f64::from(queue.get_timestamp_period()),
            });
        Gpu {
            device,
            queue,
            limits: device.limits(),
            features,
            timestamps,
        }
    }

    /// Whether the device has a feature.
    pub fn has(&self, feature: wgpu::Features) -> bool {
        self.features.contains(feature)
    }

    /// Compiles a compute pipeline (entry point `main`); validation errors and the driver's own
    /// compile failures (wgpu's internal errors, e.g. "NVVM compilation failed") come back as
    /// errors, so one kernel the driver rejects does not poison the rest of its stage.
    /// Natively, runtime bounds checks are off: every kernel's indices stay in range by
    /// construction (shapes are checked before dispatch), and the checks cost speed.
    pub async fn pipeline(
        &self,
        label: &str,
        source: &str,
    ) -> Result<wgpu::ComputePipeline, ProbeError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        #[cfg(not(target_arch = "wasm32"))]
        // SAFETY: the kernels index only inside their bindings for the shapes their runners
        // accept (every runner checks divisibility and sizes before dispatching).
        let module = unsafe {
            self.device
                .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
        };
        #[cfg(target_arch = "wasm32")]
        let module = self.device.create_shader_module(desc);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        // A pipeline the driver failed to compile (NVIDIA prints "NVVM compilation failed") is
        // created invalid without an error of its own; its first use reports it. Use it here,
        // inside the scopes, so the failure belongs to this kernel.
        let _ = pipeline.get_bind_group_layout(0);
        let internal = internal.pop().await;
        if let Some(err) = scope.pop().await.or(internal) {
            return Err(ProbeError::Shader {
                kernel: label.to_owned(),
                detail: err.to_string(),
            });
        }
        Ok(pipeline)
    }

    /// A storage buffer (also a copy source and destination).
    pub fn storage(&self, label: &str, size_bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size_bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer holding `data`.
    pub fn storage_init(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            })
    }

    /// A uniform buffer of `u32` words.
    pub fn uniform(&self, words: &[u32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::cast_slice(words),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// A bind group for group 0 of `pipeline`: `(buffer, offset, size)` per binding, in order.
    pub fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[(&wgpu::Buffer, u64, Option<u64>)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, (buffer, offset, size))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: *offset,
                    size: size.and_then(wgpu::BufferSize::new),
                }),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Zeroes a buffer (before a kernel writes it, so a kernel that writes nothing cannot pass
    /// on an earlier result).
    pub fn clear(&self, buffer: &wgpu::Buffer) {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(buffer, 0, None);
        self.queue.submit([encoder.finish()]);
    }

    /// Waits for submitted work natively (the browser completes work on its own).
    pub fn wait(&self) -> Result<(), ProbeError> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|err| ProbeError::DeviceLost(err.to_string()))?;
        Ok(())
    }

    /// Maps a `MAP_READ` buffer and copies its contents out.
    pub async fn map_read(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, ProbeError> {
        let (send, receive) = oneshot();
        buffer.map_async(wgpu::MapMode::Read, .., send);
        self.wait()?;
        receive
            .await
            .map_err(|err| ProbeError::ReadBack(err.to_string()))?;
        let bytes = buffer
            .get_mapped_range(..)
            .map_err(|err| ProbeError::ReadBack(format!("{err:?}")))?
            .to_vec();
        buffer.unmap();
        Ok(bytes)
    }

    /// Copies `size_bytes` at `offset` out of a storage buffer.
    pub async fn read_back(
        &self,
        source: &wgpu::Buffer,
        offset: u64,
        size_bytes: u64,
    ) -> Result<Vec<u8>, ProbeError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: size_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(source, offset, &staging, 0, size_bytes);
        self.queue.submit([encoder.finish()]);
        self.map_read(&staging).await
    }

    /// Waits until all submitted work is done (by mapping a tiny buffer after it).
    pub async fn finish(&self) -> Result<(), ProbeError> {
        let (send, receive) = oneshot();
        self.queue.on_submitted_work_done(move || send(()));
        self.wait()?;
        receive.await;
        Ok(())
    }

    /// Records `record` into one compute pass, submits it and waits; returns the time the pass
    /// took (GPU timestamps at the pass's start and end where available, else wall clock).
    pub async fn time_pass(
        &self,
        record: &dyn Fn(&mut wgpu::ComputePass<'_>),
    ) -> Result<Timed, ProbeError> {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let timestamp_writes =
                self.timestamps
                    .as_ref()
                    .map(|t| wgpu::ComputePassTimestampWrites {
                        query_set: &t.query_set,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed"),
                timestamp_writes,
            });
            record(&mut pass);
        }
        self.submit_timed(encoder, self.timestamps.is_some()).await
    }

    /// Whether [`Gpu::time_commands`] can time commands outside passes on the GPU (it needs
    /// `TIMESTAMP_QUERY_INSIDE_ENCODERS`, which WebGPU lacks).
    pub fn times_commands(&self) -> bool {
        self.timestamps.is_some() && self.has(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    }

    /// Records `record` (commands outside any pass, e.g. `clear_buffer`) between two GPU
    /// timestamps, submits it and waits; returns the time it took. Errors where
    /// [`Gpu::times_commands`] is false.
    pub async fn time_commands(
        &self,
        record: &dyn Fn(&mut wgpu::CommandEncoder),
    ) -> Result<Timed, ProbeError> {
        let Some(t) = self.timestamps.as_ref().filter(|_| self.times_commands()) else {
            return Err(ProbeError::Unsupported(
                "timing commands outside passes needs TIMESTAMP_QUERY_INSIDE_ENCODERS".to_owned(),
            ));
        };
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.write_timestamp(&t.query_set, 0);
        record(&mut encoder);
        encoder.write_timestamp(&t.query_set, 1);
        self.submit_timed(encoder, true).await
    }

    /// Resolves the two timestamps `encoder` wrote (if `stamped`), submits it and waits; the
    /// GPU time where the timestamps are usable, else the wall clock around submit and wait.
    async fn submit_timed(
        &self,
        mut encoder: wgpu::CommandEncoder,
        stamped: bool,
    ) -> Result<Timed, ProbeError> {
        let timestamps = self.timestamps.as_ref().filter(|_| stamped);
        if let Some(t) = timestamps {
            encoder.resolve_query_set(&t.query_set, 0..2, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.read, 0, 2 * TIMESTAMP_BYTES);
        }
        let start = now_s();
        self.queue.submit([encoder.finish()]);
        self.finish().await?;
        let wall_s = now_s() - start;
        if let Some(t) = timestamps {
            let bytes = self.map_read(&t.read).await?;
            let ticks: &[u64] = bytemuck::cast_slice(&bytes[..(2 * TIMESTAMP_BYTES) as usize]);
            if ticks[1] > ticks[0] {
                let seconds = (ticks[1] - ticks[0]) as f64 * t.period_ns * 1e-9;
                // A timestamp far off the wall clock means the driver's timestamps are not
                // usable (some report garbage): fall back to the wall clock.
                if seconds > 0.0 && seconds <= wall_s * 1.5 + 1e-3 {
                    return Ok(Timed {
                        seconds,
                        gpu_timestamp: true,
                    });
                }
            }
        }
        Ok(Timed {
            seconds: wall_s,
            gpu_timestamp: false,
        })
    }

    /// Warm-up (one dispatch, then about a quarter of `target_s` of repetitions, which also
    /// calibrates), then time repeated work: `record(pass, n)` must record `n` repetitions.
    /// The timed run lasts about `target_s` (capped at `max_iterations`).
    pub async fn measure(
        &self,
        record: &dyn Fn(&mut wgpu::ComputePass<'_>, u32),
        target_s: f64,
        max_iterations: u32,
    ) -> Result<Measured, ProbeError> {
        let time = |reps: u32| async move { self.time_pass(&|pass| record(pass, reps)).await };
        calibrated(time, target_s, max_iterations).await
    }

    /// [`Gpu::measure`] of `pipeline` with one bind group, dispatched over a `(x, y)` grid of
    /// workgroups per repetition.
    pub async fn measure_grid(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bind: &wgpu::BindGroup,
        (x, y): (u32, u32),
        target_s: f64,
        max_iterations: u32,
    ) -> Result<Measured, ProbeError> {
        let record = |pass: &mut wgpu::ComputePass<'_>, reps: u32| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind, &[]);
            for _ in 0..reps {
                pass.dispatch_workgroups(x, y, 1);
            }
        };
        self.measure(&record, target_s, max_iterations).await
    }

    /// [`Gpu::measure`] for commands outside passes, timed by [`Gpu::time_commands`]:
    /// `record(encoder, n)` must record `n` repetitions.
    pub async fn measure_commands(
        &self,
        record: &dyn Fn(&mut wgpu::CommandEncoder, u32),
        target_s: f64,
        max_iterations: u32,
    ) -> Result<Measured, ProbeError> {
        let time =
            |reps: u32| async move { self.time_commands(&|encoder| record(encoder, reps)).await };
        calibrated(time, target_s, max_iterations).await
    }
}

/// The measurement loop behind [`Gpu::measure`]: `time(n)` times `n` repetitions.
async fn calibrated<F, Fut>(
    time: F,
    target_s: f64,
    max_iterations: u32,
) -> Result<Measured, ProbeError>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<Timed, ProbeError>>,
{
    // Warm-up: first dispatch pays for pipeline compilation and memory residency.
    time(1).await?;
    let once = time(1).await?;
    let mut per_iter = once.seconds.max(1e-7);
    // Then keep the GPU busy for a quarter of the target before timing: an idle GPU runs at
    // low clocks and takes a while to ramp up. (This did not cure the H100's occasional
    // slow first timings of a matrix-unit kernel; `gemm` and `attention` time those twice.)
    let warm_reps =
        ((WARM_UP_FRACTION * target_s / per_iter).ceil() as u32).clamp(1, max_iterations.max(1));
    if warm_reps > 1 {
        let warm = time(warm_reps).await?;
        per_iter = (warm.seconds / f64::from(warm_reps)).max(1e-7);
    }
    let iterations = ((target_s / per_iter).ceil() as u32).clamp(1, max_iterations.max(1));
    let timed = if iterations == 1 {
        once
    } else {
        time(iterations).await?
    };
    Ok(Measured { iterations, timed })
}

/// A timed repeated measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Repetitions inside the timed interval.
    pub iterations: u32,
    /// The interval.
    pub timed: Timed,
}

impl Measured {
    /// Seconds per repetition.
    pub fn per_iter_s(&self) -> f64 {
        self.timed.seconds / f64::from(self.iterations)
    }

    /// As a report [`headroom_core::report::Timing`].
    pub fn timing(&self) -> headroom_core::report::Timing {
        headroom_core::report::Timing {
            timer: if self.timed.gpu_timestamp {
                "gpu_timestamp"
            } else {
                "wall_clock"
            }
            .to_owned(),
            iterations: self.iterations,
            total_s: self.timed.seconds,
            per_iter_s: self.per_iter_s(),
        }
    }
}

/// Runs `f` inside out-of-memory, validation and internal error scopes; any captured error
/// becomes an `Err` naming what was being done.
pub async fn scoped<T, F>(gpu: &Gpu<'_>, what: &str, f: F) -> Result<T, ProbeError>
where
    F: Future<Output = Result<T, ProbeError>>,
{
    let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let internal = gpu.device.push_error_scope(wgpu::ErrorFilter::Internal);
    let result = f.await;
    let internal = internal.pop().await;
    let validation = validation.pop().await;
    let oom = oom.pop().await;
    if let Some(err) = oom {
        return Err(ProbeError::OutOfMemory(format!("{what}: {err}")));
    }
    if let Some(err) = validation.or(internal) {
        return Err(ProbeError::Validation(format!("{what}: {err}")));
    }
    result
}

/// Splits `total_bytes` into pieces no larger than `max_piece_bytes` (rounded down to
/// `align_bytes`): `(offset, size)` pairs that bind a large buffer in parts.
pub fn pieces(total_bytes: u64, max_piece_bytes: u64, align_bytes: u64) -> Vec<(u64, u64)> {
    let piece = (max_piece_bytes / align_bytes).max(1) * align_bytes;
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < total_bytes {
        let size = piece.min(total_bytes - offset);
        out.push((offset, size));
        offset += size;
    }
    out
}

/// Dispatch size for `invocations` work items at `workgroup_size`, capped at the limit.
pub fn workgroups_for(invocations: u64, workgroup_size: u32, max_per_dimension: u32) -> u32 {
    invocations
        .div_ceil(u64::from(workgroup_size))
        .clamp(1, u64::from(max_per_dimension)) as u32
}
