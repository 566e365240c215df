//! Speed held to published measurements: headroom's llama.cpp and mlx-lm decode and prefill
//! estimates for the devices and models of `core/data/published_speeds.json` (llama-bench,
//! llama-cli and mlx-lm results people published, each with its source), row by row, with each
//! row's engine. Every run prints the per-row error table; the test asserts that the bands the file
//! states (and the answer quotes) are exactly the bands the estimates reach, and that every band
//! stays within its limit ([`DECODE_LIMIT_PERCENT`], [`PREFILL_LIMIT_PERCENT`] and their NVIDIA
//! counterparts). Rows of old builds that measured code paths llama.cpp has since replaced are
//! printed but kept out of the bands, each with its reason (`out_of_band`).

use headroom_core::{
    answer::{ContextAsk, Question, answer},
    devices, model_catalog,
    published::{DeviceFamily, SpeedBand, SpeedKind, bands, rows},
    runtime::Runtime,
};

/// No published decode row in a band may be further than this from headroom's estimate,
/// percent. The issue aimed at ±15%; the outliers left are on Apple GPUs: the M1 Max rows (up to
/// +67%: a late-2023 measurement of the 24-core part that sits below its own hardware, and
/// Q4_K_M's unpacking cost on the M1 generation; their notes say so). A change that makes any row
/// worse fails here or at the NVIDIA limit below.
const DECODE_LIMIT_PERCENT: f64 = 70.0;

/// The same for llama.cpp decode on NVIDIA GPUs: with CUDA graphs' small per-layer cost and the
/// matrix-vector kernels' bandwidth per SM (`core/src/speed.rs`), every row in the band is within
/// −16..+31%: the current build's rows within −8..+12%, the May 2024 build's Q4_K_M rows on the
/// RTX 3080 Ti, 3090 and 4090 (+23..+31%) the high end, the 2023 F16 row on the A100 the low.
const NVIDIA_DECODE_LIMIT_PERCENT: f64 = 32.0;

/// Most decode rows in the bands are within the issue's ±15%: at least this share of them must
/// stay so.
const DECODE_WITHIN_15_SHARE: f64 = 0.80;

/// No published prefill row in a band may be further than this from headroom's estimate,
/// percent: the M1 Max (24-core) rows of late 2023 (+124..+139%) set it.
const PREFILL_LIMIT_PERCENT: f64 = 140.0;

/// The same for llama.cpp prefill on NVIDIA GPUs, where the int8 MMQ rate per SM and clock
/// (`core/src/speed.rs`) puts every current-build row within −7..+24%.
const NVIDIA_PREFILL_LIMIT_PERCENT: f64 = 25.0;

/// Stated band ends are rounded to whole percent; the recomputed ones must match to this.
const BAND_ROUNDING_PERCENT: f64 = 0.5;

/// One compared row.
struct Compared {
    runtime: String,
    family: DeviceFamily,
    kind: SpeedKind,
    source: String,
    error_percent: f64,
}

/// headroom's estimate for a row: its speed, the verdict, and whether it fits on the device
/// alone (a row that headroom says needs offload is printed but kept out of the bands: the
/// measurement ran with every layer on the GPU, beyond what headroom counts as usable).
fn estimated(row: &headroom_core::published::PublishedSpeed) -> (SpeedKind, f64, String, bool) {
    let (kind, tokens) = row.kind_and_tokens().expect("known test name");
    let device = devices::find(&row.device).expect("catalog device");
    let model = model_catalog::find(&row.model).expect("catalog model");
    let mut q = Question::new(model, device);
    q.format = Some(row.quant.parse().expect("known format"));
    q.runtime = Some(row.engine().expect("known runtime"));
    q.context = ContextAsk::Tokens(tokens);
    let a = answer(&q).expect("answer");
    let e = &a.estimate;
    let tps = match kind {
        SpeedKind::Decode => e.decode_tokens_per_s,
        SpeedKind::Prefill => e.prefill_tokens_per_s,
    };
    (kind, tps, format!("{:?}", e.verdict), e.fits)
}

fn compare() -> Vec<Compared> {
    let mut out = Vec::new();
    println!(
        "{:<9} {:<22} {:<13} {:<12} {:<7} {:>6} {:>9} {:>9} {:>7}  verdict   source (* out of band)",
        "engine", "device", "model", "quant", "test", "ctx", "published", "headroom", "error"
    );
    for row in rows() {
        let (kind, tps, verdict, fits) = estimated(row);
        let (_, tokens) = row.kind_and_tokens().expect("known test name");
        let error_percent = (tps - row.tokens_per_s) / row.tokens_per_s * 100.0;
        println!(
            "{:<9} {:<22} {:<13} {:<12} {:<7} {:>6} {:>9.1} {:>9.1} {:>+6.1}%  {:<9} {}{}",
            row.runtime,
            row.device,
            row.model,
            row.quant,
            row.test,
            tokens,
            row.tokens_per_s,
            tps,
            error_percent,
            verdict,
            row.source,
            if row.out_of_band.is_some() { " *" } else { "" }
        );
        if !fits {
            continue;
        }
        if let Some(why) = &row.out_of_band {
            assert!(
                out_of_band_allowed(row),
                "{} {} {}: only NVIDIA rows of builds before June 2024 may be kept out of the \
                 bands ({why})",
                row.device,
                row.quant,
                row.test
            );
            continue;
        }
        let device = devices::find(&row.device).expect("catalog device");
        out.push(Compared {
            runtime: row.runtime.clone(),
            family: DeviceFamily::of(&device).expect("Apple or NVIDIA"),
            kind,
            source: row.source.clone(),
            error_percent,
        });
    }
    out
}

/// Whether `row` may be kept out of the bands: NVIDIA (CUDA) llama.cpp rows measured by a build
/// from before June 2024 (dated before then, or a build the source places in 2023). Those builds
/// ran code paths llama.cpp has since replaced: quantized weights at prompt batches went through
/// f16 cuBLAS (llama.cpp PR #8075 made the int8 MMQ kernels the default in June 2024), and the
/// current build decodes the same quantized model on the same card 27-48% faster than the
/// late-2023 one. Every other row, however far off, counts; each kept-out row says why.
fn out_of_band_allowed(row: &headroom_core::published::PublishedSpeed) -> bool {
    let before_june_2024 = match &row.date {
        Some(date) => date.as_str() < "2024-06",
        None => row.build.contains("2023"),
    };
    row.backend == "CUDA" && row.runtime == Runtime::LlamaCpp.to_string() && before_june_2024
}

fn band_of(rows: &[&Compared]) -> (f64, f64, f64) {
    let mut e: Vec<f64> = rows.iter().map(|c| c.error_percent).collect();
    e.sort_by(f64::total_cmp);
    let median = if e.len() % 2 == 1 {
        e[e.len() / 2]
    } else {
        (e[e.len() / 2 - 1] + e[e.len() / 2]) / 2.0
    };
    (e[0], e[e.len() - 1], median)
}

#[test]
fn published_speeds_within_the_stated_bands() {
    let compared = compare();
    let out_of_band = rows().iter().filter(|r| r.out_of_band.is_some()).count();
    assert!(
        compared.len() + 2 + out_of_band >= rows().len(),
        "only the F16 rows of the 16 GB M1 Pro are expected not to fit"
    );
    let mut computed = Vec::new();
    for runtime in [Runtime::LlamaCpp.to_string(), Runtime::Mlx.to_string()] {
        for family in [DeviceFamily::AppleGpu, DeviceFamily::NvidiaGpu] {
            for kind in [SpeedKind::Decode, SpeedKind::Prefill] {
                let these: Vec<&Compared> = compared
                    .iter()
                    .filter(|c| c.runtime == runtime && c.family == family && c.kind == kind)
                    .collect();
                if these.is_empty() {
                    continue;
                }
                let (low, high, median) = band_of(&these);
                let mut sources: Vec<String> = these.iter().map(|c| c.source.clone()).collect();
                sources.sort();
                sources.dedup();
                let band = SpeedBand {
                    runtime: runtime.clone(),
                    family,
                    kind,
                    rows: these.len() as u32,
                    low_percent: low.round(),
                    high_percent: high.round(),
                    median_percent: median.round(),
                    sources,
                };
                println!("{}", band.sentence());
                computed.push((band, low, high, median));
            }
        }
    }
    let decode: Vec<&Compared> = compared
        .iter()
        .filter(|c| c.kind == SpeedKind::Decode)
        .collect();
    let within = decode
        .iter()
        .filter(|c| c.error_percent.abs() <= 15.0)
        .count();
    println!("decode rows within ±15%: {within} of {}", decode.len());
    assert!(
        within as f64 >= DECODE_WITHIN_15_SHARE * decode.len() as f64,
        "only {within} of {} decode rows within ±15%",
        decode.len()
    );
    // The stated bands, as JSON, for `core/data/published_speeds.json` when they change.
    let stated_now: Vec<&SpeedBand> = computed.iter().map(|(b, ..)| b).collect();
    println!(
        "bands: {}",
        serde_json::to_string_pretty(&stated_now).expect("serialize")
    );
    assert_eq!(
        bands().len(),
        computed.len(),
        "one stated band per engine, family and speed"
    );
    for (band, low, high, median) in &computed {
        let stated = bands()
            .iter()
            .find(|b| b.runtime == band.runtime && b.family == band.family && b.kind == band.kind)
            .unwrap_or_else(|| panic!("no stated band for {}", band.sentence()));
        for (name, s, c) in [
            ("low", stated.low_percent, *low),
            ("high", stated.high_percent, *high),
            ("median", stated.median_percent, *median),
        ] {
            assert!(
                (s - c).abs() <= BAND_ROUNDING_PERCENT + 1e-9,
                "{} {} {} {name}: stated {s}%, reached {c:.2}%",
                band.runtime,
                band.family.name(),
                band.kind.name()
            );
        }
        assert_eq!(stated.rows, band.rows);
        assert_eq!(stated.sources, band.sources);
        let limit = match (band.kind, band.family) {
            (SpeedKind::Decode, DeviceFamily::NvidiaGpu) => NVIDIA_DECODE_LIMIT_PERCENT,
            (SpeedKind::Decode, _) => DECODE_LIMIT_PERCENT,
            (SpeedKind::Prefill, DeviceFamily::NvidiaGpu) => NVIDIA_PREFILL_LIMIT_PERCENT,
            (SpeedKind::Prefill, _) => PREFILL_LIMIT_PERCENT,
        };
        assert!(
            low.abs() <= limit && high.abs() <= limit,
            "{} {} {}: band {low:.1}%..{high:.1}% beyond ±{limit}%",
            band.runtime,
            band.family.name(),
            band.kind.name()
        );
    }
}

#[test]
fn an_mlx_answer_on_an_apple_gpu_quotes_the_mlx_band() {
    let device = devices::find("m3-max-40c-64gb").expect("catalog device");
    let model = model_catalog::find("llama-3.3-70b").expect("catalog model");
    let mut q = Question::new(model, device);
    q.format = Some("mlx-4bit-g64".parse().expect("known format"));
    q.runtime = Some(Runtime::Mlx);
    let a = answer(&q).expect("answer");
    assert_eq!(a.speed_bands.len(), 2, "decode and prefill");
    assert!(a.speed_bands.iter().all(|b| b.runtime == "mlx"));
    assert!(
        a.estimate.assumptions.iter().any(|s| s
            .starts_with("speed held to published measurements: decode estimates for mlx")
            && s.contains("published mlx-lm measurements")),
        "{:#?}",
        a.estimate.assumptions
    );
}
