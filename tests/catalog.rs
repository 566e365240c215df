//! The bundled model catalog: every entry parses, and its computed parameter count agrees with the
//! count its publisher states.
//!
//! Tolerance: publishers round or truncate to the digits they print ("8.03B", "671B", "3.8B"), so
//! the true count lies within one unit of the last printed digit (0.01B for "8.03B", 1B for
//! "671B"). That is the whole tolerance; nothing else is allowed for.

use headroom_core::{
    CoreError,
    components::components,
    model::ComponentKind,
    model_catalog::{entries, find, find_entry, parse_published_count},
    params::param_counts,
};
use headroom_tests::{expected_param_counts, fixture_model, fixture_names};

/// Parameters of the SigLIP vision tower and projector of a multimodal Gemma-3 checkpoint, from its
/// `vision_config` (transformers' SiglipVisionModel + Gemma3MultiModalProjector): patch
/// convolution with bias, one position embedding per patch, per layer two LayerNorms (weight and
/// bias), q/k/v/o with biases and a two-layer MLP with biases, a final LayerNorm, then the
/// projector (`vision_hidden × text_hidden` matrix and an RMSNorm over the vision width).
fn gemma3_vision_params(config: &serde_json::Value) -> u64 {
    let v = &config["vision_config"];
    let get = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("vision_config.{k}"));
    let (h, inter, layers) = (
        get("hidden_size"),
        get("intermediate_size"),
        get("num_hidden_layers"),
    );
    let (patch, image) = (get("patch_size"), get("image_size"));
    let text_hidden = config["text_config"]["hidden_size"]
        .as_u64()
        .expect("text_config.hidden_size");
    let patches = (image / patch) * (image / patch);
    let embeddings = 3 * patch * patch * h + h + patches * h;
    let per_layer = 2 * (2 * h) + 4 * (h * h + h) + (h * inter + inter) + (inter * h + h);
    let projector = h * text_hidden + h;
    embeddings + layers * per_layer + 2 * h + projector
}

#[test]
fn catalog_has_at_least_40_unique_models() {
    let all = entries();
    assert!(all.len() >= 40, "only {} models", all.len());
    let mut ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "duplicate catalog ids");
    for e in all {
        assert!(e.hub_id.contains('/'), "{}: hub id {}", e.id, e.hub_id);
        assert!(!e.source.is_empty(), "{}: no source", e.id);
        assert_eq!(e.id, e.id.to_ascii_lowercase(), "ids are lower case");
    }
}

#[test]
fn every_entry_matches_its_published_count() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for e in entries() {
        let model = e
            .model()
            .unwrap_or_else(|err| panic!("{} does not parse: {err}", e.id));
        assert!(!model.approximate, "{} is approximate", e.id);
        let counts = param_counts(&model);
        let computed = match e.published_scope.as_str() {
            "text" => counts.total,
            // The SigLIP tower and projector are components of the model now; they must equal
            // the hand count of SiglipVisionModel + Gemma3MultiModalProjector.
            "text+vision" => {
                let vision: u64 = components(&model)
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.kind,
                            ComponentKind::VisionEncoder | ComponentKind::VisionProjector
                        )
                    })
                    .map(|c| c.params)
                    .sum();
                assert_eq!(vision, gemma3_vision_params(&e.config), "{}", e.id);
                counts.total
            }
            other => panic!("{}: unknown scope {other}", e.id),
        };
        let (published, unit) = parse_published_count(&e.published_params)
            .unwrap_or_else(|| panic!("{}: bad count {}", e.id, e.published_params));
        let diff = computed as f64 - published;
        report.push(format!(
            "{:22} computed {:>16} published {:>7} ({:+.3}%)",
            e.id,
            computed,
            e.published_params,
            diff / published * 100.0
        ));
        if diff.abs() > unit {
            failures.push(format!(
                "{}: computed {computed} vs published {} (± {unit})",
                e.id, e.published_params
            ));
        }
        if let Some(active) = &e.published_active_params {
            assert!(
                model.moe.is_some(),
                "{}: active count for a dense model",
                e.id
            );
            let (published, unit) =
                parse_published_count(active).unwrap_or_else(|| panic!("{}: {active}", e.id));
            // Vendors count active parameters with or without the input embedding table.
            let with = counts.active as f64;
            let without = counts.active_excluding_input_embedding as f64;
            if (with - published).abs() > unit && (without - published).abs() > unit {
                failures.push(format!(
                    "{}: active {with} / {without} (without embedding) vs published {active}",
                    e.id
                ));
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fixtures_in_the_catalog_match_exactly() {
    let expected = expected_param_counts();
    let mut matched = 0;
    for name in fixture_names() {
        let Ok(entry) = find_entry(&name) else {
            continue;
        };
        matched += 1;
        let from_catalog = param_counts(&entry.model().expect("parses"));
        let from_fixture = param_counts(&fixture_model(&name));
        assert_eq!(from_catalog, from_fixture, "{name}");
        assert_eq!(
            from_catalog.total,
            expected[&name]["params_total"].as_u64().expect("total"),
            "{name}"
        );
    }
    // Every fixture except the instruct/base naming differences is in the catalog.
    assert!(
        matched >= 14,
        "only {matched} fixtures found in the catalog"
    );
}

#[test]
fn find_by_id_hub_id_or_repo_name() {
    let a = find("llama-3.1-8b").expect("by id");
    let b = find("meta-llama/Llama-3.1-8B").expect("by hub id");
    let c = find("LLAMA-3.1-8B").expect("by repo name, any case");
    assert_eq!(a.hidden_size, 4096);
    assert_eq!(param_counts(&a), param_counts(&b));
    assert_eq!(param_counts(&a), param_counts(&c));
}

#[test]
fn unknown_model_suggests_close_matches() {
    let err = find("llama-3.1-9b").expect_err("unknown");
    let CoreError::Unknown { kind, hint, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(kind, "model");
    assert!(hint.contains("llama-3.1-8b"), "{hint}");
    let err = find("zzzzzzzzzzzzzzzzzzzz").expect_err("unknown");
    assert!(err.to_string().contains("headroom models"), "{err}");
}

#[test]
fn published_counts_parse_with_their_precision() {
    let close = |text: &str, value: f64, unit: f64| {
        let (v, u) = parse_published_count(text).unwrap_or_else(|| panic!("{text}"));
        assert!(
            (v - value).abs() < 1.0 && (u - unit).abs() < 1e-6,
            "{text}: {v} ± {u}"
        );
    };
    close("8.03B", 8.03e9, 1e7);
    close("494M", 494e6, 1e6);
    close("671B", 671e9, 1e9);
    assert_eq!(parse_published_count("8.03"), None);
    assert_eq!(parse_published_count("x.yB"), None);
}

#[test]
fn every_catalog_model_passes_the_spec_limits() {
    // estimate() checks a model against the config limits; no real model may trip them.
    for entry in headroom_core::model_catalog::entries() {
        let m = entry.model().expect("catalog model parses");
        headroom_core::config::check_model_spec(&m).unwrap_or_else(|e| panic!("{}: {e}", m.name));
    }
}

#[test]
fn a_model_by_size_alone_is_close_in_size_and_says_it_is_approximate() {
    use headroom_core::model_catalog::model_of_size;
    for (asked, reference) in [
        (7_000_000_000u64, "llama-3.1-8b"),
        (13_000_000_000, "llama-3.1-8b"),
        (32_000_000_000, "llama-3.1-70b"),
        (1_500_000_000, "llama-3.2-1b"),
    ] {
        let m = model_of_size(asked).unwrap_or_else(|e| panic!("{asked}: {e}"));
        let got = param_counts(&m).total as f64;
        let off = (got - asked as f64).abs() / asked as f64;
        // One layer of the reference is the step: within 10% at these sizes.
        assert!(off < 0.10, "{asked}: {got} ({:.1}% off)", off * 100.0);
        assert!(m.approximate && !m.exact());
        let why = m.approximations.join(" ");
        assert!(why.contains(reference), "{asked}: {why}");
        assert!(why.contains("config.json"), "{why}");
    }
    assert!(model_of_size(1_000).is_err());
    assert!(model_of_size(u64::MAX).is_err());
}
