//! Thin wrappers over the browser APIs the site uses: the clock, the URL/history, files and
//! `fetch`. Each turns a JavaScript exception into a message a person can act on.
//!
//! These compile natively too (web-sys links stubs), but only do something in a browser.

use js_sys::Uint8Array;

use crate::error::WebError;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Milliseconds from `performance.now()` (0 outside a browser).
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}

/// The current `location.search` (`?a=1`), or empty.
pub fn location_search() -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default()
}

/// Replace the URL's query without reloading or adding a history entry.
pub fn replace_search(search: &str) {
    set_search(search, false);
}

/// Change the URL's query, adding a history entry (page navigation).
pub fn push_search(search: &str) {
    set_search(search, true);
}

fn set_search(search: &str, push: bool) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let path = window.location().pathname().unwrap_or_default();
    let url = format!("{path}{search}");
    if let Ok(history) = window.history() {
        // Failing to update the address bar loses shareability, not data: nothing to report.
        let _ = if push {
            history.push_state_with_url(&JsValue::NULL, "", Some(&url))
        } else {
            history.replace_state_with_url(&JsValue::NULL, "", Some(&url))
        };
    }
}

/// A JavaScript error as text.
pub fn js_error_text(err: &JsValue) -> String {
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    err.as_string().unwrap_or_else(|| format!("{err:?}"))
}

/// Read bytes `[start, end)` of a file (clamped to its size) with `Blob.slice`: only that part of
/// the file is read, whatever its size.
pub async fn read_file_range(
    file: &web_sys::File,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, WebError> {
    let size = file.size() as u64;
    let end = end.min(size);
    let start = start.min(end);
    let blob = file
        .slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(|e| {
            WebError::File(format!(
                "cannot slice {}: {}",
                file.name(),
                js_error_text(&e)
            ))
        })?;
    let buffer = JsFuture::from(blob.array_buffer()).await.map_err(|e| {
        WebError::File(format!(
            "cannot read {}: {}",
            file.name(),
            js_error_text(&e)
        ))
    })?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Read a whole (small) file as text, refused unread when it is larger than `cap_bytes`: a
/// dropped file can be anything, and reading gigabytes into a string would freeze the tab.
pub async fn read_file_text(file: &web_sys::File, cap_bytes: u64) -> Result<String, WebError> {
    if file.size() > cap_bytes as f64 {
        return Err(WebError::File(format!(
            "{}: {:.0} MB is more than the {} MiB such a file can be; is this the right file?",
            file.name(),
            file.size() / 1e6,
            cap_bytes >> 20
        )));
    }
    let text = JsFuture::from(file.text()).await.map_err(|e| {
        WebError::File(format!(
            "cannot read {}: {}",
            file.name(),
            js_error_text(&e)
        ))
    })?;
    text.as_string()
        .ok_or_else(|| WebError::File(format!("{} is not text", file.name())))
}

/// The files of a `FileList` (from an `<input type=file>` or a drop).
pub fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// The outcome of a `fetch` that reached a server.
pub struct FetchedText {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

/// GET `url`. `Err` means no response at all (offline, blocked, DNS).
pub async fn fetch_text(url: &str) -> Result<FetchedText, WebError> {
    let network = |e: JsValue| WebError::Network(js_error_text(&e));
    let window = web_sys::window().ok_or_else(|| WebError::Browser("no browser window".into()))?;
    let response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(network)?;
    let response: web_sys::Response = response
        .dyn_into()
        .map_err(|_| WebError::Network("fetch returned something that is not a Response".into()))?;
    let status = response.status();
    let text_promise = response.text().map_err(network)?;
    let body = JsFuture::from(text_promise)
        .await
        .map_err(network)?
        .as_string()
        .unwrap_or_default();
    Ok(FetchedText { status, body })
}

/// Offer `text` as a file download named `file_name`.
pub fn download_text(file_name: &str, text: &str, mime: &str) -> Result<(), WebError> {
    let browser = |e: JsValue| WebError::Browser(js_error_text(&e));
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob =
        web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(browser)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(browser)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| WebError::Browser("no document".into()))?;
    let anchor: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(browser)?
        .dyn_into()
        .map_err(|_| WebError::Browser("cannot create a link".into()))?;
    anchor.set_href(&url);
    anchor.set_download(file_name);
    anchor.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// Wait `ms` milliseconds (lets the page repaint between benchmark steps).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// This browser's `localStorage` value for `key`, if any (none in private windows that block it).
pub fn storage_get(key: &str) -> Option<String> {
    web_sys::window()?
        .local_storage()
        .ok()??
        .get_item(key)
        .ok()?
}

/// Remember `value` under `key` in `localStorage`; a browser that refuses keeps nothing, which
/// only costs the next visit its remembered device.
pub fn storage_set(key: &str, value: &str) {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.set_item(key, value);
    }
}
