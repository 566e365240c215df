//! Fuzzing that stays in CI: a seeded, deterministic property test over mutated real inputs for
//! every parser of untrusted bytes — config.json (then the whole answer on a device), the probe
//! report (then the measured device), GGUF and safetensors headers (then the model and weights
//! they give) and the LoRA layer grammar. The property: every input ends in `Ok` or an error;
//! no panic (debug builds also trap integer overflow), and nothing runs away.
//!
//! Cases and seed: [`DEFAULT_CASES`] per target from [`DEFAULT_SEED`]; `HEADROOM_FUZZ_CASES`
//! and `HEADROOM_FUZZ_SEED` set others for a longer local run. A failure prints the target, the
//! seed and the case index; a crash found is kept as a file under `tests/data/fuzz/TARGET/`,
//! which [`committed_crashes_stay_fixed`] replays on every run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use headroom_core::answer::{Question, answer};
use headroom_core::config::model_from_config_json;
use headroom_core::devices::{self, DeviceSpec};
use headroom_core::files::{
    CheckpointWeights, gguf_header, safetensors_header, spec_from_gguf, writer,
};
use headroom_core::report::ProbeReport;
use headroom_core::training::parse_lora_layers;

/// Cases per target in the normal test run: 10,000 in all, about 4 s in a debug build.
const DEFAULT_CASES: u64 = 2000;

/// Seed of the normal run: fixed, so a failure reproduces.
const DEFAULT_SEED: u64 = 0x6865_6164_726f_6f6d;

/// Configs larger than this are left out of the mutation pool: the big ones are long
/// quantization lists whose parsing dominates the time without reaching more code.
const MAX_CONFIG_FIXTURE_BYTES: u64 = 64 << 10;

/// SplitMix64 (Steele, Lea, Flood 2014): small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn settings() -> (u64, u64) {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    (
        var("HEADROOM_FUZZ_CASES", DEFAULT_CASES),
        var("HEADROOM_FUZZ_SEED", DEFAULT_SEED),
    )
}

/// Numbers that break arithmetic: zero, one, the edges of every integer width, huge and
/// non-finite-looking floats, negatives.
const EXTREMES: &[&str] = &[
    "0",
    "1",
    "-1",
    "255",
    "65536",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "1e-320",
    "0.5",
    "NaN",
    "Infinity",
    "\"\"",
    "[]",
    "{}",
    "null",
    "true",
];

/// One random mutation of `bytes`: flip, insert, delete, duplicate, truncate, or (in text) a
/// number swapped for an extreme one.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, text: bool) {
    if bytes.is_empty() {
        bytes.push(rng.next() as u8);
        return;
    }
    let at = rng.below(bytes.len());
    match rng.below(if text { 7 } else { 6 }) {
        0 => bytes[at] ^= 1 << rng.below(8),
        1 => bytes[at] = rng.next() as u8,
        2 => bytes.insert(at, rng.next() as u8),
        3 => {
            let end = (at + 1 + rng.below(64)).min(bytes.len());
            bytes.drain(at..end);
        }
        4 => {
            let end = (at + 1 + rng.below(64)).min(bytes.len());
            let copy = bytes[at..end].to_vec();
            let to = rng.below(bytes.len());
            bytes.splice(to..to, copy);
        }
        5 => bytes.truncate(at),
        _ => {
            // The next number at or after `at`, replaced whole.
            let Some(start) = (at..bytes.len()).find(|&i| bytes[i].is_ascii_digit()) else {
                return;
            };
            let end = (start..bytes.len())
                .find(|&i| !(bytes[i].is_ascii_digit() || matches!(bytes[i], b'.' | b'e' | b'-')))
                .unwrap_or(bytes.len());
            let with = EXTREMES[rng.below(EXTREMES.len())].as_bytes();
            bytes.splice(start..end, with.iter().copied());
        }
    }
}

/// `input` mutated 1 to 4 times.
fn mutated(rng: &mut Rng, input: &[u8], text: bool) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        mutate(rng, &mut bytes, text);
    }
    bytes
}

/// Runs `case` on `cases` inputs, reporting the first panic with what reproduces it.
fn run(
    target: &str,
    cases: u64,
    seed: u64,
    mut case: impl FnMut(&mut Rng) -> Vec<u8>,
    check: impl Fn(&[u8]),
) -> u64 {
    let mut rng = Rng(seed ^ fnv(target));
    for i in 0..cases {
        let input = case(&mut rng);
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!(
                "fuzz target `{target}` panicked on case {i} (HEADROOM_FUZZ_SEED={seed}); \
                 input ({} bytes): {:?}\nsave it under tests/data/fuzz/{target}/ so that it \
                 stays a regression input",
                input.len(),
                String::from_utf8_lossy(&input[..input.len().min(4096)])
            );
        }
    }
    cases
}

/// FNV-1a of a target name: each target draws its own stream from one seed.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn rtx_4090() -> DeviceSpec {
    devices::find("rtx-4090").unwrap_or_else(|e| panic!("{e}"))
}

fn check_config(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(model) = model_from_config_json("fuzz", &text) {
        let _ = answer(&Question::new(model, rtx_4090()));
    }
}

fn check_report(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(report) = ProbeReport::from_json(&text) {
        let measured = report.measured_device();
        let device = DeviceSpec::from_measured(&measured);
        let _ = rtx_4090().with_measurements(&measured);
        let model = headroom_tests::fixture_model("Llama-3.2-1B");
        let _ = answer(&Question::new(model, device));
    }
}

fn check_gguf(bytes: &[u8]) {
    // The file's size as the header claims it: the mutated bytes, or the fixture's full size.
    for size in [None, Some(bytes.len() as u64), Some(1 << 30)] {
        if let Ok(header) = gguf_header::parse(bytes, size) {
            let _ = CheckpointWeights::from_gguf(&header, "fuzz.gguf");
            if let Ok(model) = spec_from_gguf(&header, "fuzz.gguf") {
                let _ = answer(&Question::new(model.spec, rtx_4090()));
            }
        }
    }
}

fn check_safetensors(bytes: &[u8]) {
    for size in [None, Some(bytes.len() as u64), Some(1 << 30)] {
        if let Ok(header) = safetensors_header::parse(bytes, size) {
            let _ = CheckpointWeights::from_safetensors(&[("fuzz.safetensors".to_owned(), header)]);
        }
    }
}

fn check_lora(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let (layers, spec) = text.split_once('|').unwrap_or(("32", &text));
    let layers = layers.parse::<u64>().unwrap_or(32).min(10_000);
    if let Ok(Some(list)) = parse_lora_layers(spec, layers) {
        assert!(list.iter().all(|&i| i < layers), "{spec}: {list:?}");
        assert!(list.windows(2).all(|w| w[0] < w[1]), "{spec}: {list:?}");
    }
}

fn config_pool() -> Vec<Vec<u8>> {
    let dir = headroom_tests::data_dir().join("hf-configs");
    let mut pool: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !p.ends_with("param_counts.json"))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() <= MAX_CONFIG_FIXTURE_BYTES))
        .filter_map(|p| Some((p.display().to_string(), std::fs::read(&p).ok()?)))
        .collect();
    pool.sort();
    pool.into_iter().map(|(_, bytes)| bytes).collect()
}

fn report_pool() -> Vec<Vec<u8>> {
    let dir = headroom_tests::data_dir().join("reports");
    [
        "lavapipe-report.json",
        "h100-report.json",
        "h200-report.json",
    ]
    .iter()
    .map(|name| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
    .collect()
}

/// ggml type ids: F32, Q4_K, Q6_K.
const F32: u32 = 0;
const Q4_K: u32 = 12;
const Q6_K: u32 = 14;

fn gguf_seed() -> Vec<u8> {
    writer::gguf(
        "llama",
        &[
            ("llama.block_count", 2),
            ("llama.embedding_length", 64),
            ("llama.attention.head_count", 4),
            ("llama.attention.head_count_kv", 2),
            ("llama.feed_forward_length", 128),
            ("llama.context_length", 2048),
        ],
        &[
            ("token_embd.weight", &[100, 64], Q4_K),
            ("blk.0.attn_norm.weight", &[64], F32),
            ("output.weight", &[100, 64], Q6_K),
        ],
    )
    .header
}

fn safetensors_seed() -> Vec<u8> {
    writer::safetensors(&[
        ("model.embed_tokens.weight", "BF16", &[100, 64]),
        ("model.layers.0.mlp.down_proj.weight", "F8_E4M3", &[64, 128]),
        ("model.layers.0.mlp.down_proj.weight_scale_inv", "F32", &[1]),
    ])
    .header
}

#[test]
fn mutated_inputs_never_panic() {
    let (cases, seed) = settings();
    let configs = config_pool();
    assert!(configs.len() > 50, "{} configs", configs.len());
    let reports = report_pool();
    let (gguf, safetensors) = (gguf_seed(), safetensors_seed());
    let mut total = 0;
    total += run(
        "config",
        cases,
        seed,
        |rng| {
            let i = rng.below(configs.len());
            mutated(rng, &configs[i], true)
        },
        check_config,
    );
    total += run(
        "report",
        cases,
        seed,
        |rng| {
            let i = rng.below(reports.len());
            mutated(rng, &reports[i], true)
        },
        check_report,
    );
    total += run(
        "gguf",
        cases,
        seed,
        |rng| mutated(rng, &gguf, false),
        check_gguf,
    );
    total += run(
        "safetensors",
        cases,
        seed,
        |rng| {
            let text = rng.next() % 2 == 0;
            mutated(rng, &safetensors, text)
        },
        check_safetensors,
    );
    total += run(
        "lora",
        cases,
        seed,
        |rng| {
            const ALPHABET: &[u8] = b"0123456789,-: allfirstl|";
            let len = rng.below(40);
            (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect()
        },
        check_lora,
    );
    eprintln!("fuzz: {total} cases, seed {seed}");
}

/// A fuzz target's property check on one input.
type Check = fn(&[u8]);

/// Longest one regression input may take (debug build, shared CI core): a hang or a runaway
/// allocation shows as a failure, not as a slow test run.
const REPLAY_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Every input once found to crash, hang or exhaust a target, kept under
/// `tests/data/fuzz/TARGET/` (seeded with the reproducers of issue 17: header counts of
/// 0xFFFFFFFF, a safetensors header claiming 1 GB, a 12,000-entry `mlp_only_layers`, reports
/// claiming 2^64 − 1 bytes or 10^308 B/s, a LoRA list of repeated ranges). Each target holds at
/// least one, so this test can fail.
#[test]
fn committed_crashes_stay_fixed() {
    let root = headroom_tests::data_dir().join("fuzz");
    let checks: [(&str, Check); 5] = [
        ("config", check_config),
        ("report", check_report),
        ("gguf", check_gguf),
        ("safetensors", check_safetensors),
        ("lora", check_lora),
    ];
    for (target, check) in checks {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|entry| entry.path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no regression input for `{target}`");
        for path in files {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let started = std::time::Instant::now();
            if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
                panic!("{} crashes `{target}` again", relative(&path));
            }
            assert!(
                started.elapsed() < REPLAY_WITHIN,
                "{} took {:?} in `{target}`",
                relative(&path),
                started.elapsed()
            );
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(headroom_tests::data_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}
