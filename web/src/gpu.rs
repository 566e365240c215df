//! Getting a WebGPU device in the browser. The probe's kernels take `&wgpu::Device, &wgpu::Queue`
//! and never create one themselves; this is the browser's side of that split.

use wasm_bindgen::JsValue;

/// Why no device could be had, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// `navigator.gpu` is missing.
    #[error(
        "this browser does not offer WebGPU (navigator.gpu is missing). Use a current Chrome, Edge \
         or Safari 26+; in Firefox enable dom.webgpu.enabled; on Linux Chromium start it with \
         --enable-unsafe-webgpu (and --enable-features=Vulkan for a real GPU)."
    )]
    NoWebGpu,
    /// `requestAdapter()` gave nothing.
    #[error(
        "WebGPU is present but no GPU adapter was offered ({0}). The GPU may be blocklisted: \
         check chrome://gpu, update the driver, or start Chromium with --enable-unsafe-webgpu."
    )]
    NoAdapter(String),
    /// `requestDevice()` failed.
    #[error("the GPU adapter refused to create a device: {0}")]
    NoDevice(String),
}

/// What the browser says about its adapter (`GPUAdapter.info`; wgpu's `AdapterInfo` is mostly
/// empty on the web).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserAdapterInfo {
    /// `vendor`, e.g. `google`.
    pub vendor: String,
    /// `architecture`, e.g. `swiftshader`.
    pub architecture: String,
    /// `description`.
    pub description: String,
    /// `isFallbackAdapter`.
    pub is_fallback: bool,
}

impl BrowserAdapterInfo {
    /// A display name: description, else vendor + architecture, else "WebGPU adapter".
    pub fn display_name(&self) -> String {
        if !self.description.is_empty() {
            self.description.clone()
        } else if !self.vendor.is_empty() || !self.architecture.is_empty() {
            format!("{} {}", self.vendor, self.architecture)
                .trim()
                .to_string()
        } else {
            "WebGPU adapter".to_string()
        }
    }
}

/// A device ready for the kernels.
pub struct GpuContext {
    /// The adapter (for limits and features).
    pub adapter: wgpu::Adapter,
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The browser's description of the adapter.
    pub info: BrowserAdapterInfo,
}

fn js_get(obj: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Whether `navigator.gpu` exists at all.
pub fn has_navigator_gpu() -> bool {
    web_sys::window()
        .map(|w| !js_get(&w.navigator(), "gpu").is_undefined())
        .unwrap_or(false)
}

/// Ask `navigator.gpu.requestAdapter()` directly for the adapter's `info`.
async fn browser_adapter_info() -> BrowserAdapterInfo {
    let Some(window) = web_sys::window() else {
        return BrowserAdapterInfo::default();
    };
    let gpu = js_get(&window.navigator(), "gpu");
    let Ok(request) = js_sys::Reflect::get(&gpu, &JsValue::from_str("requestAdapter")) else {
        return BrowserAdapterInfo::default();
    };
    let Ok(request) = wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(request) else {
        return BrowserAdapterInfo::default();
    };
    let Ok(promise) = request.call0(&gpu) else {
        return BrowserAdapterInfo::default();
    };
    let Ok(adapter) = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise)).await
    else {
        return BrowserAdapterInfo::default();
    };
    if adapter.is_null() || adapter.is_undefined() {
        return BrowserAdapterInfo::default();
    }
    let info = js_get(&adapter, "info");
    let text = |k: &str| js_get(&info, k).as_string().unwrap_or_default();
    BrowserAdapterInfo {
        vendor: text("vendor"),
        architecture: text("architecture"),
        description: text("description"),
        is_fallback: js_get(&info, "isFallbackAdapter")
            .as_bool()
            .unwrap_or(false),
    }
}

/// Get an adapter and a device as the probe requests it (the adapter's own limits: wgpu's
/// defaults cap buffers at 256 MiB, which would cut the memory measurements short).
pub async fn acquire() -> Result<GpuContext, GpuError> {
    if !has_navigator_gpu() {
        return Err(GpuError::NoWebGpu);
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::BROWSER_WEBGPU;
    let instance = wgpu::Instance::new(desc);
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
    // The probe's own device request: the adapter's limits and every probe feature it has.
    let (device, queue) = headroom_probe::adapter::request_device(&adapter)
        .await
        .map_err(|e| GpuError::NoDevice(e.to_string()))?;
    let info = browser_adapter_info().await;
    Ok(GpuContext {
        adapter,
        device,
        queue,
        info,
    })
}
