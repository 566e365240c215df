//! Tests: today's Macs. The GPU's share of unified memory by macOS release and RAM size (the
//! reported values, interpolation between them, the older rule), what replaces the table (a
//! probe's measurement, the wired limit), Metal's largest buffer against the largest tensor or
//! cache buffer, and PyTorch MPS's allocation limit.

use headroom_core::{
    CoreError,
    answer::{Question, answer},
    devices::{self, DeviceSpec},
    error::Setting,
    estimate::BufferKind,
    macos::{MacosVersion, mps_high_watermark_bytes, reports, working_set},
    quant::WeightFormat,
    runtime::Runtime,
    units::{GIB, MIB},
    usable_memory::{apple_working_set_bytes, usable_memory_on},
};
use headroom_tests::fixture_model;

fn v(text: &str) -> MacosVersion {
    text.parse()
        .unwrap_or_else(|e| panic!("macOS version {text}: {e}"))
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

fn device(name: &str) -> DeviceSpec {
    devices::find(name).unwrap_or_else(|e| panic!("device {name}: {e}"))
}

#[test]
fn macos_26_gives_the_reported_working_sets() {
    // The reports issue 15 lists: 48 GB → 36.0 GiB, 64 GB → 51.84 GiB, 128 GB → 107.52 GiB.
    for (ram, expected) in [(48, 36.0), (64, 51.84), (128, 107.52)] {
        let ws = working_set(ram * GIB, Some(v("26")));
        assert!(
            (gib(ws.bytes) - expected).abs() < 0.005,
            "{ram} GiB: {} GiB",
            gib(ws.bytes)
        );
        assert!(ws.basis.contains("as reported"), "{}", ws.basis);
        // The default is today's release.
        assert_eq!(working_set(ram * GIB, None).bytes, ws.bytes);
    }
}

#[test]
fn older_releases_keep_the_two_thirds_three_quarters_rule() {
    assert_eq!(working_set(64 * GIB, Some(v("14.6"))).bytes, 49152 * MIB);
    assert_eq!(
        working_set(16 * GIB, Some(v("15"))).bytes,
        apple_working_set_bytes(16 * GIB)
    );
    // Every report of macOS 11–15 in the catalog agrees with the rule (within the 0.01 MB the
    // logs round to).
    let older: Vec<_> = reports().iter().filter(|r| r.macos_to <= 15).collect();
    assert!(older.len() >= 5);
    for r in older {
        let rule = gib(apple_working_set_bytes((r.ram_gib * GIB as f64) as u64));
        assert!(
            (rule - r.working_set_gib).abs() < 0.001,
            "{} GiB: rule {rule}, reported {}",
            r.ram_gib,
            r.working_set_gib
        );
    }
}

#[test]
fn sizes_between_reports_interpolate_the_share_and_outside_hold_it() {
    let release = Some(v("26"));
    // 96 GiB lies halfway between 64 (81%) and 128 (84%): 82.5%.
    let ws = working_set(96 * GIB, release);
    assert!((gib(ws.bytes) / 96.0 - 0.825).abs() < 1e-6, "{}", ws.basis);
    assert!(ws.basis.contains("interpolated"), "{}", ws.basis);
    // Above the largest report, its share (84%).
    let ws = working_set(512 * GIB, release);
    assert!((gib(ws.bytes) / 512.0 - 0.84).abs() < 1e-6, "{}", ws.basis);
    // Below the smallest report, the older rule: 16 GB → 2/3, 36 GB → 3/4.
    assert_eq!(
        working_set(16 * GIB, release).bytes,
        apple_working_set_bytes(16 * GIB)
    );
    assert_eq!(working_set(36 * GIB, release).bytes, 27 * GIB);
    // Monotone in RAM on every release: more memory never gives the GPU less.
    for release in [v("14"), v("15"), v("26")] {
        let mut last = 0;
        for ram in (8..=512).step_by(8) {
            let b = working_set(ram * GIB, Some(release)).bytes;
            assert!(b >= last, "macOS {release}, {ram} GiB");
            last = b;
        }
    }
}

#[test]
fn a_probe_measurement_and_the_wired_limit_replace_the_table() {
    let mut mac = device("m3 max 40 64gb");
    let on_26 = usable_memory_on(&mac, Runtime::Mlx, None, Some(v("26")));
    let on_14 = usable_memory_on(&mac, Runtime::Mlx, None, Some(v("14")));
    assert!((gib(on_26.usable_bytes) - 51.84).abs() < 0.005);
    assert_eq!(on_14.usable_bytes, 48 * GIB);
    // A probe report's recommendedMaxWorkingSetSize wins over any release.
    mac.measured_usable_bytes = Some(50 * GIB);
    for release in [None, Some(v("14")), Some(v("26"))] {
        let u = usable_memory_on(&mac, Runtime::Mlx, None, release);
        assert_eq!(u.usable_bytes, 50 * GIB);
        assert!(u.basis.contains("measured"), "{}", u.basis);
    }
    // The wired limit wins over both.
    let u = usable_memory_on(&mac, Runtime::Mlx, Some(60 * GIB), Some(v("26")));
    assert_eq!(u.usable_bytes, 60 * GIB);
}

#[test]
fn the_question_carries_the_release_to_the_verdict() {
    // Llama-3.1-8B in bf16 at 32k (~19.5 GiB in MLX) on a 24 GB M4 Pro: the older rule and
    // macOS 26 agree below 48 GB; on a 64 GB Mac the usable memory differs by release.
    let model = fixture_model("Llama-3.1-8B");
    let mac = device("m3 max 40 64gb");
    let usable = |release: &str| {
        let q = Question {
            macos: Some(v(release)),
            ..Question::new(model.clone(), mac.clone())
        };
        answer(&q)
            .unwrap_or_else(|e| panic!("{e}"))
            .estimate
            .usable_bytes
    };
    assert_eq!(usable("14"), 48 * GIB);
    assert!((gib(usable("26")) - 51.84).abs() < 0.005);
    let q = Question {
        macos: Some(v("26")),
        ..Question::new(model.clone(), device("rtx-4090"))
    };
    match answer(&q) {
        Err(CoreError::Setting {
            setting: Setting::MacosVersion,
            ..
        }) => {}
        other => panic!("macOS on a discrete GPU: {other:?}"),
    }
    for bad in ["16", "25", "10", "100", "twenty-six", "26.x"] {
        assert!(
            matches!(
                bad.parse::<MacosVersion>(),
                Err(CoreError::Setting {
                    setting: Setting::MacosVersion,
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn the_largest_buffer_is_checked_and_named() {
    // gpt-oss-20b in MXFP4 on a 16 GB M2 Pro: every tensor fits Metal's largest buffer (half of
    // RAM, 8 GiB), the whole weights (about 12 GiB) do not: a runtime that maps the file as one
    // buffer fails, as reported on that machine.
    let model = fixture_model("gpt-oss-20b");
    let q = Question {
        format: Some(WeightFormat::Mxfp4),
        runtime: Some(Runtime::TransformersMps),
        ..Question::new(model, device("m2 pro 19 16gb"))
    };
    let a = answer(&q).unwrap_or_else(|e| panic!("{e}"));
    let check = a
        .estimate
        .largest_buffer
        .clone()
        .unwrap_or_else(|| panic!("no check"));
    assert_eq!(check.max_buffer_bytes, 8 * GIB);
    assert!(!check.exceeds);
    assert!(a.estimate.weights_bytes > 8 * GIB);
    let note = check.whole_weights_note.unwrap_or_default();
    assert!(note.contains("as a whole"), "{note}");

    // A device whose largest buffer is 256 MiB: Llama-3.1-8B's bf16 embedding (128256 × 4096 ×
    // 2 B = 1002 MiB) does not fit, and the check names it.
    let mut small = device("m2-10c-16gb");
    small.max_buffer_bytes = Some(256 * MIB);
    let q = Question {
        format: Some(WeightFormat::Bf16),
        ..Question::new(fixture_model("Llama-3.1-8B"), small)
    };
    let a = answer(&q).unwrap_or_else(|e| panic!("{e}"));
    let check = a
        .estimate
        .largest_buffer
        .clone()
        .unwrap_or_else(|| panic!("no check"));
    assert_eq!(check.kind, BufferKind::WeightTensor);
    assert!(check.exceeds);
    assert_eq!(check.bytes, 128_256 * 4096 * 2);
    assert!(
        check.name.contains("embd") || check.name.contains("output"),
        "{}",
        check.name
    );
    assert!(
        a.estimate
            .assumptions
            .iter()
            .any(|s| s.starts_with("warning:") && s.contains(&check.name)),
        "{:#?}",
        a.estimate.assumptions
    );

    // 64 sequences of 128k tokens: one layer's keys (64 · 131072 · 8 · 128 · 2 B = 16 GiB) are
    // the largest buffer and exceed 8 GiB.
    let q = Question {
        format: Some("Q4_K_M".parse().unwrap_or_else(|e| panic!("{e}"))),
        context: headroom_core::answer::ContextAsk::Tokens(131_072),
        batch: 64,
        ..Question::new(fixture_model("Llama-3.1-8B"), device("m2-10c-16gb"))
    };
    let a = answer(&q).unwrap_or_else(|e| panic!("{e}"));
    let check = a
        .estimate
        .largest_buffer
        .unwrap_or_else(|| panic!("no check"));
    assert_eq!(check.kind, BufferKind::KvLayer);
    assert_eq!(check.bytes, 16 * GIB);
    assert!(check.exceeds);
}

#[test]
fn pytorch_mps_high_watermark_is_stated_for_transformers_on_mps() {
    // 16 GB M2: 1.7 × 10.67 GiB = 18.13 GiB, the limit in the M2 sweep's error.
    let m2 = device("m2-10c-16gb");
    let ws = working_set(m2.memory_bytes, None).bytes;
    assert!((gib(mps_high_watermark_bytes(ws)) - 18.13).abs() < 0.005);
    let q = Question {
        runtime: Some(Runtime::TransformersMps),
        format: Some(WeightFormat::Bf16),
        ..Question::new(fixture_model("Llama-3.1-8B"), m2.clone())
    };
    let a = answer(&q).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        a.estimate.mps_high_watermark_bytes,
        Some(mps_high_watermark_bytes(ws))
    );
    assert!(
        a.estimate
            .assumptions
            .iter()
            .any(|s| s.starts_with("PyTorch MPS") && s.contains("18.13 GiB")),
        "{:#?}",
        a.estimate.assumptions
    );
    // Other engines carry no such limit.
    let q = Question {
        runtime: Some(Runtime::Mlx),
        ..Question::new(fixture_model("Llama-3.1-8B"), m2)
    };
    let a = answer(&q).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.estimate.mps_high_watermark_bytes, None);
}

#[test]
fn only_macs_take_the_release_table() {
    // A non-Apple adapter sharing 64 GiB of host memory keeps the older cautious share, whatever
    // the Mac table says for macOS 26.
    let mut shared = device("m3 max 40 64gb");
    shared.vendor = "measured".into();
    shared.name = "llvmpipe (LLVM 15.0.6, 256 bits)".into();
    let u = usable_memory_on(&shared, Runtime::LlamaCpp, None, None);
    assert_eq!(u.usable_bytes, 48 * GIB);
    assert!(!u.basis.contains("macOS"), "{}", u.basis);
}
