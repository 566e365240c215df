//! Speeds other people measured and published, and how far headroom's estimates are from them.
//!
//! `core/data/published_speeds.json` holds llama.cpp `llama-bench` results (prefill of a 512-token
//! prompt, decode of 128 or 512 tokens, batch 1, every layer on the GPU), a few `llama-cli` runs at
//! published prompt lengths, and mlx-lm results (`mlx_lm.generate`/`mlx_lm.benchmark` prompt and
//! generation speeds, batch 1), each with where it was read, its engine, the catalog device and
//! model it maps to, the weight format, backend, build and date. Its `bands` give, per engine and
//! device family, the range of headroom's error over those rows; the test
//! `tests/published_speeds.rs` recomputes every error from the answer and fails when a stated band
//! no longer holds, so the band the answer quotes is the one the code reaches.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{CoreError, devices::DeviceSpec, runtime::Runtime};

/// The bundled table's JSON text.
pub const PUBLISHED_SPEEDS_JSON: &str = include_str!("../data/published_speeds.json");

/// Which speed a row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeedKind {
    /// Tokens generated per second, one sequence (`tg128`, `tg512`).
    Decode,
    /// Prompt tokens processed per second (`pp512`).
    Prefill,
}

impl SpeedKind {
    /// The word used in text.
    pub fn name(self) -> &'static str {
        match self {
            SpeedKind::Decode => "decode",
            SpeedKind::Prefill => "prefill",
        }
    }
}

/// One published measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedSpeed {
    /// Where the number was published (URL).
    pub source: String,
    /// When the number was read in a copy of the source rather than on the source itself, what
    /// that copy was.
    #[serde(default)]
    pub read_via: Option<String>,
    /// The engine that measured it, as `Runtime` names it (`llama.cpp`, `mlx`); rows without
    /// one are llama.cpp's.
    #[serde(default = "llama_cpp_name")]
    pub runtime: String,
    /// The catalog device id it maps to (`core/data/devices.json`).
    pub device: String,
    /// The device as the source names it.
    pub device_label: String,
    /// The catalog model id (`core/data/models.json`).
    pub model: String,
    /// The weight format as headroom parses it: a GGUF type (`Q4_0`, `Q8_0`, `F16`, `Q4_K_M`)
    /// or an MLX one (`mlx-4bit-g64`, `bf16`).
    pub quant: String,
    /// The backend (`Metal`, `CUDA`).
    pub backend: String,
    /// The engine's build and settings, as far as the source gives them.
    pub build: String,
    /// Year and month of the measurement, when the source gives it.
    #[serde(default)]
    pub date: Option<String>,
    /// The test: `ppN` (prefill of an N-token prompt) or `tgN` (decode of N tokens), as
    /// llama-bench names them; mlx-lm rows use the same names with the published lengths.
    pub test: String,
    /// The tokens in context the measurement ran at, where that is not the test's own length:
    /// an mlx-lm decode after a long prompt runs at about the prompt's length.
    #[serde(default)]
    pub context_tokens: Option<u64>,
    /// The published result.
    pub tokens_per_s: f64,
    /// How the row was mapped, where that needed a choice.
    #[serde(default)]
    pub note: Option<String>,
    /// Why the row is kept out of the stated bands, when it is: it measured code paths that
    /// llama.cpp has since replaced and headroom does not model (its error is still printed by
    /// `tests/published_speeds.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_band: Option<String>,
}

impl PublishedSpeed {
    /// Decode or prefill, and the tokens in context the test runs at (`context_tokens`, else
    /// its prompt or generated length); `None` for a test name this table does not know.
    pub fn kind_and_tokens(&self) -> Option<(SpeedKind, u64)> {
        let (kind, n) = if let Some(n) = self.test.strip_prefix("pp") {
            (SpeedKind::Prefill, n)
        } else if let Some(n) = self.test.strip_prefix("tg") {
            (SpeedKind::Decode, n)
        } else {
            return None;
        };
        let n = n.parse().ok().filter(|n| *n > 0)?;
        Some((kind, self.context_tokens.filter(|c| *c > 0).unwrap_or(n)))
    }

    /// The engine, `None` for a name `Runtime` does not parse.
    pub fn engine(&self) -> Option<Runtime> {
        self.runtime.parse().ok()
    }
}

fn llama_cpp_name() -> String {
    Runtime::LlamaCpp.to_string()
}

/// What the published measurements of `runtime` are called in text: the engine's project name
/// (llama.cpp rows are llama-bench and llama-cli runs; MLX rows are mlx-lm's).
fn measurements_of(runtime: &str) -> &'static str {
    if runtime == Runtime::Mlx.to_string() {
        "mlx-lm"
    } else {
        "llama.cpp"
    }
}

/// Which devices a band covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceFamily {
    /// Apple silicon GPUs (Metal).
    AppleGpu,
    /// NVIDIA GPUs (CUDA).
    NvidiaGpu,
}

impl DeviceFamily {
    /// The family of `device`.
    pub fn of(device: &DeviceSpec) -> Option<DeviceFamily> {
        if device.is_apple_silicon() {
            Some(DeviceFamily::AppleGpu)
        } else if device.vendor.eq_ignore_ascii_case("nvidia") {
            Some(DeviceFamily::NvidiaGpu)
        } else {
            None
        }
    }

    /// The words used in text.
    pub fn name(self) -> &'static str {
        match self {
            DeviceFamily::AppleGpu => "Apple GPUs",
            DeviceFamily::NvidiaGpu => "NVIDIA GPUs",
        }
    }
}

/// The range of headroom's error over the published rows of one engine, device family and
/// speed: `(estimate − published) ÷ published`, in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedBand {
    /// The engine, as `Runtime` names it (`llama.cpp`, `mlx`).
    pub runtime: String,
    /// The devices.
    pub family: DeviceFamily,
    /// Decode or prefill.
    pub kind: SpeedKind,
    /// Rows compared.
    pub rows: u32,
    /// Lowest error, percent (negative: headroom says slower than measured).
    pub low_percent: f64,
    /// Highest error, percent.
    pub high_percent: f64,
    /// Median error, percent.
    pub median_percent: f64,
    /// The sources of those rows.
    pub sources: Vec<String>,
}

impl SpeedBand {
    /// The band in words, for the answer's assumptions.
    pub fn sentence(&self) -> String {
        format!(
            "{} estimates for {} on {} (catalog figures) were within {:+.0}%..{:+.0}% (median \
             {:+.0}%) of {} published {} measurements ({})",
            self.kind.name(),
            self.runtime,
            self.family.name(),
            // Adding 0.0 turns a rounded −0 into 0, which prints without its sign.
            self.low_percent + 0.0,
            self.high_percent + 0.0,
            self.median_percent.round() + 0.0,
            self.rows,
            measurements_of(&self.runtime),
            self.sources.join(", ")
        )
    }
}

#[derive(Deserialize)]
struct PublishedFile {
    rows: Vec<PublishedSpeed>,
    #[serde(default)]
    bands: Vec<SpeedBand>,
}

/// Parse the bundled table, reporting a malformed file (a build-time mistake) as an error.
pub fn table_result() -> Result<(Vec<PublishedSpeed>, Vec<SpeedBand>), CoreError> {
    serde_json::from_str::<PublishedFile>(PUBLISHED_SPEEDS_JSON)
        .map(|f| (f.rows, f.bands))
        .map_err(|e| CoreError::MalformedJson {
            what: "core/data/published_speeds.json".into(),
            detail: e.to_string(),
        })
}

fn table() -> &'static (Vec<PublishedSpeed>, Vec<SpeedBand>) {
    static TABLE: OnceLock<(Vec<PublishedSpeed>, Vec<SpeedBand>)> = OnceLock::new();
    TABLE.get_or_init(|| table_result().unwrap_or_default())
}

/// Every published row (parsed once). Empty only if the bundled file is malformed, which a test
/// rules out.
pub fn rows() -> &'static [PublishedSpeed] {
    &table().0
}

/// Every stated band.
pub fn bands() -> &'static [SpeedBand] {
    &table().1
}

/// The bands that apply to an answer for `runtime` on `device` (decode first).
pub fn bands_for(runtime: Runtime, device: &DeviceSpec) -> Vec<&'static SpeedBand> {
    let Some(family) = DeviceFamily::of(device) else {
        return Vec::new();
    };
    if !matches!(runtime, Runtime::LlamaCpp | Runtime::Mlx) {
        return Vec::new();
    }
    let name = runtime.to_string();
    let mut out: Vec<&SpeedBand> = bands()
        .iter()
        .filter(|b| b.runtime == name && b.family == family)
        .collect();
    out.sort_by_key(|b| b.kind != SpeedKind::Decode);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_table_parses_and_every_test_name_is_known() {
        let (rows, _) = table_result().expect("bundled table parses");
        assert!(!rows.is_empty());
        for r in &rows {
            assert!(
                r.kind_and_tokens().is_some(),
                "{}: test {}",
                r.source,
                r.test
            );
            assert!(r.tokens_per_s > 0.0);
            assert!(
                matches!(r.engine(), Some(Runtime::LlamaCpp | Runtime::Mlx)),
                "{}: runtime {}",
                r.source,
                r.runtime
            );
        }
    }

    #[test]
    fn each_engine_gets_its_own_bands() {
        let mac = crate::devices::find("m3-max-40c-64gb").expect("catalog device");
        let nvidia = crate::devices::find("rtx-4090").expect("catalog device");
        for runtime in [Runtime::LlamaCpp, Runtime::Mlx] {
            let bands = bands_for(runtime, &mac);
            assert_eq!(bands.len(), 2, "{runtime}: decode and prefill");
            assert_eq!(bands[0].kind, SpeedKind::Decode);
            assert!(bands.iter().all(|b| b.runtime == runtime.to_string()));
        }
        let mlx = bands_for(Runtime::Mlx, &mac);
        assert!(mlx[0].sentence().contains("published mlx-lm measurements"));
        assert!(
            bands_for(Runtime::LlamaCpp, &mac)[0]
                .sentence()
                .contains("published llama.cpp measurements")
        );
        // mlx-lm runs on Apple GPUs only, and no published rows cover transformers.
        assert!(bands_for(Runtime::Mlx, &nvidia).is_empty());
        assert!(bands_for(Runtime::TransformersMps, &mac).is_empty());
        // Rows without a runtime are llama.cpp's.
        let n_mlx = rows()
            .iter()
            .filter(|r| r.engine() == Some(Runtime::Mlx))
            .count();
        assert!(n_mlx > 0 && n_mlx < rows().len());
    }
}
