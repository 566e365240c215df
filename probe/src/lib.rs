//! # headroom-probe
//!
//! WGSL kernels and their wgpu runners that measure a machine: GEMM (f32, f16, cooperative
//! matrix), attention, bandwidth, largest buffer, the model-size allocation sweep and decode
//! simulation. Runners take `&wgpu::Device, &wgpu::Queue` and never create a device themselves,
//! so the same code runs natively (the `headroom` binary) and in the browser (the site).
#![deny(missing_docs)]
