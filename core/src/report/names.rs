//! Stage and metric names of the probe report: the closed sets of values that the `stage` field
//! of a [`StageRecord`](super::StageRecord) and the `name` field of a
//! [`Measurement`](super::Measurement) take. The JSON keeps the strings (`"sweep"`,
//! `"bandwidth.read"`, `"decode.q4_0"`); Rust code matches on these enums instead of string
//! prefixes, and the schema lists the same strings (a test holds the two together).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One stage of a probe run, in the order the probe runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stage {
    /// Matrix multiplication: f32, f16 and f16 on matrix units.
    #[serde(rename = "gemm")]
    Gemm,
    /// Fused attention.
    #[serde(rename = "attention")]
    Attention,
    /// Read, write and copy bandwidth of device memory.
    #[serde(rename = "bandwidth")]
    Bandwidth,
    /// Host RAM read bandwidth with every core reading (native runs only), for offload.
    #[serde(rename = "host_bandwidth")]
    HostBandwidth,
    /// Host→device upload and device→host download of a large buffer, for offload.
    #[serde(rename = "transfer")]
    Transfer,
    /// A decode step simulated as a dequantizing matrix–vector product.
    #[serde(rename = "decode")]
    Decode,
    /// The largest single buffer.
    #[serde(rename = "max_buffer")]
    MaxBuffer,
    /// The model-size allocation stage: fp16 weights allocated step by step until an error, the
    /// budget or the swap knee. Its JSON name is `sweep` (schema version 1).
    #[serde(rename = "sweep")]
    Allocation,
}

impl Stage {
    /// Every stage, in run order.
    pub const ALL: [Stage; 8] = [
        Stage::Gemm,
        Stage::Attention,
        Stage::Bandwidth,
        Stage::HostBandwidth,
        Stage::Transfer,
        Stage::Decode,
        Stage::MaxBuffer,
        Stage::Allocation,
    ];

    /// The name written into reports and taken by `headroom probe --only`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Gemm => "gemm",
            Stage::Attention => "attention",
            Stage::Bandwidth => "bandwidth",
            Stage::HostBandwidth => "host_bandwidth",
            Stage::Transfer => "transfer",
            Stage::Decode => "decode",
            Stage::MaxBuffer => "max_buffer",
            Stage::Allocation => "sweep",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A name that is not one of a closed set of report names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`; known: {known}")]
pub struct UnknownName {
    /// What kind of name (`stage`, `metric`).
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The known names, comma-separated.
    pub known: String,
}

impl FromStr for Stage {
    type Err = UnknownName;
    fn from_str(text: &str) -> Result<Stage, UnknownName> {
        Stage::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| UnknownName {
                what: "stage",
                name: text.to_owned(),
                known: Stage::ALL.map(Stage::name).join(", "),
            })
    }
}

/// A GEMM variant: input type, accumulator, and whether it runs on matrix units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GemmMetric {
    /// f32 in, f32 accumulate, f32 out.
    F32,
    /// f16 in, f32 accumulate, f32 out.
    F16AccF32,
    /// f16 in, f16 accumulate, f16 out.
    F16AccF16,
    /// f16 in on matrix units (cooperative matrices), f32 accumulate and out.
    CoopF16AccF32,
    /// f16 in on matrix units, f16 accumulate and out.
    CoopF16AccF16,
}

impl GemmMetric {
    /// Every variant, in report order.
    pub const ALL: [GemmMetric; 5] = [
        GemmMetric::F32,
        GemmMetric::F16AccF32,
        GemmMetric::F16AccF16,
        GemmMetric::CoopF16AccF32,
        GemmMetric::CoopF16AccF16,
    ];
}

/// Storage type of attention's Q, K, V and O tensors (arithmetic is f32 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionStorage {
    /// f16 tensors (the adapter has `SHADER_F16`).
    F16,
    /// f32 tensors.
    F32,
}

/// One attention configuration: storage type, head size (64 or 128) and mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttentionMetric {
    /// Storage type.
    pub storage: AttentionStorage,
    /// Head size: 64 or 128 (the only sizes the kernels are written for).
    pub head_dim: u32,
    /// Causal mask.
    pub causal: bool,
}

impl AttentionMetric {
    /// Head sizes the probe measures.
    pub const HEAD_DIMS: [u32; 2] = [128, 64];
}

/// A bandwidth measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BandwidthMetric {
    /// Reading device memory.
    Read,
    /// Writing device memory.
    Write,
    /// Copying within device memory.
    Copy,
}

impl BandwidthMetric {
    /// Every measurement, in report order.
    pub const ALL: [BandwidthMetric; 3] = [
        BandwidthMetric::Read,
        BandwidthMetric::Write,
        BandwidthMetric::Copy,
    ];
}

/// A measurement of the host beside the device: its RAM and the link between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostMetric {
    /// Host RAM read with every core (`host_bandwidth.read`).
    Read,
    /// Host→device upload (`transfer.upload`).
    Upload,
    /// Device→host download (`transfer.download`).
    Download,
}

impl HostMetric {
    /// Every measurement, in report order.
    pub const ALL: [HostMetric; 3] = [HostMetric::Read, HostMetric::Upload, HostMetric::Download];
}

/// The weight format of a decode simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeMetric {
    /// GGUF q4_0.
    Q4_0,
    /// GGUF q8_0.
    Q8_0,
    /// fp16 weights.
    Fp16,
}

impl DecodeMetric {
    /// Every format, in report order.
    pub const ALL: [DecodeMetric; 3] = [DecodeMetric::Q4_0, DecodeMetric::Q8_0, DecodeMetric::Fp16];
}

/// What a [`Measurement`](super::Measurement) measured; its JSON form is the `name` string,
/// e.g. `gemm.f32`, `gemm.coop.f16.acc_f32`, `attention.f16.d128.causal`, `bandwidth.read`,
/// `decode.q4_0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Metric {
    /// A GEMM variant.
    Gemm(GemmMetric),
    /// An attention configuration.
    Attention(AttentionMetric),
    /// A bandwidth measurement.
    Bandwidth(BandwidthMetric),
    /// A decode simulation.
    Decode(DecodeMetric),
    /// Host RAM and host↔device transfer.
    Host(HostMetric),
}

impl Metric {
    /// Every metric, in report order.
    pub fn all() -> Vec<Metric> {
        let mut out: Vec<Metric> = GemmMetric::ALL.into_iter().map(Metric::Gemm).collect();
        for storage in [AttentionStorage::F16, AttentionStorage::F32] {
            for head_dim in AttentionMetric::HEAD_DIMS {
                for causal in [false, true] {
                    out.push(Metric::Attention(AttentionMetric {
                        storage,
                        head_dim,
                        causal,
                    }));
                }
            }
        }
        out.extend(BandwidthMetric::ALL.map(Metric::Bandwidth));
        out.extend(HostMetric::ALL.map(Metric::Host));
        out.extend(DecodeMetric::ALL.map(Metric::Decode));
        out
    }

    /// The stage that produces this metric.
    pub fn stage(self) -> Stage {
        match self {
            Metric::Gemm(_) => Stage::Gemm,
            Metric::Attention(_) => Stage::Attention,
            Metric::Bandwidth(_) => Stage::Bandwidth,
            Metric::Decode(_) => Stage::Decode,
            Metric::Host(HostMetric::Read) => Stage::HostBandwidth,
            Metric::Host(_) => Stage::Transfer,
        }
    }
}

impl Metric {
    fn name(self) -> String {
        match self {
            Metric::Gemm(g) => String::from(match g {
                GemmMetric::F32 => "gemm.f32",
                GemmMetric::F16AccF32 => "gemm.f16.acc_f32",
                GemmMetric::F16AccF16 => "gemm.f16.acc_f16",
                GemmMetric::CoopF16AccF32 => "gemm.coop.f16.acc_f32",
                GemmMetric::CoopF16AccF16 => "gemm.coop.f16.acc_f16",
            }),
            Metric::Attention(a) => format!(
                "attention.{}.d{}.{}",
                match a.storage {
                    AttentionStorage::F16 => "f16",
                    AttentionStorage::F32 => "f32",
                },
                a.head_dim,
                if a.causal { "causal" } else { "full" }
            ),
            Metric::Bandwidth(b) => String::from(match b {
                BandwidthMetric::Read => "bandwidth.read",
                BandwidthMetric::Write => "bandwidth.write",
                BandwidthMetric::Copy => "bandwidth.copy",
            }),
            Metric::Decode(d) => String::from(match d {
                DecodeMetric::Q4_0 => "decode.q4_0",
                DecodeMetric::Q8_0 => "decode.q8_0",
                DecodeMetric::Fp16 => "decode.fp16",
            }),
            Metric::Host(h) => String::from(match h {
                HostMetric::Read => "host_bandwidth.read",
                HostMetric::Upload => "transfer.upload",
                HostMetric::Download => "transfer.download",
            }),
        }
    }
}

impl fmt::Display for Metric {
    /// The report name; honours width and alignment (`{:<28}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.name())
    }
}

impl FromStr for Metric {
    type Err = UnknownName;
    fn from_str(text: &str) -> Result<Metric, UnknownName> {
        let all = Metric::all();
        all.iter()
            .copied()
            .find(|m| m.to_string() == text)
            .ok_or_else(|| UnknownName {
                what: "metric",
                name: text.to_owned(),
                known: all
                    .iter()
                    .map(Metric::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl From<Metric> for String {
    fn from(metric: Metric) -> String {
        metric.to_string()
    }
}

impl TryFrom<String> for Metric {
    type Error = UnknownName;
    fn try_from(text: String) -> Result<Metric, UnknownName> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_itself_and_names_are_unique() {
        let all = Metric::all();
        let mut names: Vec<String> = all.iter().map(Metric::to_string).collect();
        for (metric, name) in all.iter().zip(&names) {
            assert_eq!(name.parse::<Metric>().as_ref(), Ok(metric));
            assert!(name.starts_with(metric.stage().name()), "{name}");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for stage in Stage::ALL {
            assert_eq!(stage.name().parse::<Stage>(), Ok(stage));
        }
        assert!("gemm.f64".parse::<Metric>().is_err());
        assert!("sweeps".parse::<Stage>().is_err());
    }

    #[test]
    fn json_keeps_the_strings() {
        let json = serde_json::to_string(&(Stage::Allocation, Metric::Decode(DecodeMetric::Q4_0)));
        assert_eq!(json.ok().as_deref(), Some(r#"["sweep","decode.q4_0"]"#));
        let back: Result<(Stage, Metric), _> =
            serde_json::from_str(r#"["max_buffer","attention.f32.d64.causal"]"#);
        assert_eq!(
            back.ok(),
            Some((
                Stage::MaxBuffer,
                Metric::Attention(AttentionMetric {
                    storage: AttentionStorage::F32,
                    head_dim: 64,
                    causal: true
                })
            ))
        );
        assert!(serde_json::from_str::<Metric>(r#""gemm.f16_coop""#).is_err());
        assert_eq!(format!("{:<12}|", Stage::Gemm), "gemm        |");
        assert_eq!(
            format!("{:>16}|", Metric::Bandwidth(BandwidthMetric::Read)),
            "  bandwidth.read|"
        );
    }
}
