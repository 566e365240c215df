//! Tests: serving. How many users (sequences at the context) vLLM, llama.cpp's server and MLX
//! hold, against the engines' own arithmetic (vLLM's paged pool, llama.cpp's n_ctx = N × context),
//! the inverse held to the verdict (the most users fit, one more does not), decode per user and
//! in aggregate, and the checks on the setting.

use headroom_core::{
    CoreError,
    answer::{ContextAsk, Question, answer},
    devices,
    error::Setting,
    estimate::estimate,
    kv_cache::KvDtype,
    quant::WeightFormat,
    runtime::Runtime,
    serving::{MAX_USERS, VLLM_MAX_NUM_SEQS},
    training::{LoraSettings, Mode},
    units::{GIB, KIB},
};
use headroom_tests::fixture_model;

fn question(device: &str, runtime: Runtime, format: &str, context: u64) -> Question {
    Question {
        format: Some(format.parse().unwrap_or_else(|e| panic!("{format}: {e}"))),
        runtime: Some(runtime),
        context: ContextAsk::Tokens(context),
        ..Question::new(
            fixture_model("Llama-3.1-8B"),
            devices::find(device).unwrap_or_else(|e| panic!("{device}: {e}")),
        )
    }
}

fn fits_with(q: &Question, users: u64) -> bool {
    let q = Question {
        users: Some(users),
        ..q.clone()
    };
    answer(&q).is_ok_and(|a| a.estimate.fits)
}

#[test]
fn vllm_pool_is_the_share_less_weights_activations_and_graphs() {
    // Llama-3.1-8B bf16 at 32k on an H100: KV per user = 32 layers · 2 · 8 heads · 128 · 2 B =
    // 128 KiB per token × 32,768 = 4 GiB (2,048 blocks of 16 tokens).
    let q = question("h100-sxm", Runtime::vllm_default(), "bf16", 32_768);
    let a = answer(&q).unwrap_or_else(|e| panic!("{e}"));
    let s = a.serving.unwrap_or_else(|| panic!("vLLM serves"));
    assert_eq!(s.kv_bytes_per_user, 4 * GIB);
    assert_eq!(s.block_tokens, Some(16));
    let e = &a.estimate;
    let pool = e.usable_bytes - (e.weights_bytes + e.activation_bytes + e.overhead_bytes);
    assert_eq!(s.kv_pool_bytes, Some(pool));
    assert_eq!(s.max_users, pool / (4 * GIB));
    assert!(s.max_users >= 10 && s.max_users <= 16, "{}", s.max_users);
    assert_eq!(s.limited_by, "the paged KV pool");
    // The inverse agrees with the verdict: the most users fit, one more does not.
    assert!(fits_with(&q, s.max_users));
    assert!(!fits_with(&q, s.max_users + 1));
    assert!(s.engine_settings.contains("--max-model-len 32768"));
}

#[test]
fn vllm_rounds_each_user_up_to_whole_blocks_and_caps_at_max_num_seqs() {
    // 1,000 tokens take 63 blocks = 1,008 tokens of 128 KiB.
    let q = question("h100-sxm", Runtime::vllm_default(), "bf16", 1_000);
    let s = answer(&q)
        .unwrap_or_else(|e| panic!("{e}"))
        .serving
        .unwrap_or_else(|| panic!("vLLM serves"));
    assert_eq!(s.kv_bytes_per_user, 1_008 * 128 * KIB);
    // The pool holds hundreds of such users; max_num_seqs schedules 256.
    assert_eq!(s.max_users, VLLM_MAX_NUM_SEQS);
    assert!(s.limited_by.contains("max_num_seqs"), "{}", s.limited_by);
}

#[test]
fn llama_cpp_users_share_n_ctx_and_the_inverse_matches_the_verdict() {
    let q = question("rtx-4090", Runtime::LlamaCpp, "Q4_K_M", 8_192);
    let a = answer(&q).unwrap_or_else(|e| panic!("{e}"));
    let s = a.serving.unwrap_or_else(|| panic!("llama.cpp serves"));
    // f16 KV: 128 KiB per token × 8,192 = 1 GiB per user.
    assert_eq!(s.kv_bytes_per_user, GIB);
    assert!(s.max_users > 1);
    assert!(fits_with(&q, s.max_users));
    assert!(!fits_with(&q, s.max_users + 1));
    assert_eq!(
        s.engine_settings,
        format!(
            "llama-server -np {} -c {} --kv-unified",
            s.max_users,
            s.max_users * 8_192
        )
    );
    // N users at 8k hold the cells of one sequence at N × 8k (full attention everywhere).
    let n = 4;
    let q4 = Question {
        users: Some(n),
        ..q.clone()
    };
    let users = answer(&q4).unwrap_or_else(|e| panic!("{e}")).estimate;
    let long = estimate(&headroom_core::estimate::EstimateRequest {
        context: Some(n * 8_192),
        ..headroom_core::answer::request(&q).unwrap_or_else(|e| panic!("{e}"))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(users.kv_cache_bytes, long.kv_cache_bytes);
    assert_eq!(users.batch, n);
}

#[test]
fn decode_reads_weights_once_and_every_users_cache() {
    let q = question("h100-sxm", Runtime::vllm_default(), "bf16", 4_096);
    let one = answer(&q).unwrap_or_else(|e| panic!("{e}"));
    let s1 = one.serving.clone().unwrap_or_else(|| panic!("serves"));
    // One user: the estimate's own decode speed.
    assert!(
        (s1.at_users.per_user_tokens_per_s - one.estimate.decode_tokens_per_s).abs()
            < 1e-6 * one.estimate.decode_tokens_per_s
    );
    assert!(!s1.at_users.compute_bound);
    let mut last_per_user = f64::INFINITY;
    let mut last_aggregate = 0.0;
    for users in [1, 2, 8, 32] {
        let s = answer(&Question {
            users: Some(users),
            ..q.clone()
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .serving
        .unwrap_or_else(|| panic!("serves"));
        let u = s.at_users;
        assert_eq!(u.users, users);
        assert!((u.aggregate_tokens_per_s - u.per_user_tokens_per_s * users as f64).abs() < 1e-6);
        // Each user is slower with more users, all together faster (weights read once per step).
        assert!(u.per_user_tokens_per_s < last_per_user || users == 1);
        assert!(u.aggregate_tokens_per_s > last_aggregate);
        last_per_user = u.per_user_tokens_per_s;
        last_aggregate = u.aggregate_tokens_per_s;
    }
    // Memory-bound per-user speed: bandwidth ÷ (weights + users × KV). At 32 users of 0.5 GiB
    // each, the step reads 15 GiB of weights + 16 GiB of KV, about half the speed of one user.
    let s32 = answer(&Question {
        users: Some(32),
        ..q.clone()
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .serving
    .unwrap_or_else(|| panic!("serves"));
    let ratio = s32.at_users.per_user_tokens_per_s / s1.at_users.per_user_tokens_per_s;
    let w = one.estimate.weights_bytes as f64;
    let kv = (GIB / 2) as f64;
    let expected = (w + kv) / (w + 32.0 * kv);
    assert!((ratio - expected).abs() < 0.02, "{ratio} vs {expected}");
    // Many users at a short context on a slow-compute device become compute-bound.
    let q = question("m2-10c-16gb", Runtime::LlamaCpp, "Q4_K_M", 256);
    let s = answer(&Question {
        users: Some(64),
        ..q
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .serving
    .unwrap_or_else(|| panic!("serves"));
    assert!(s.at_users.compute_bound);
}

#[test]
fn users_are_checked() {
    let q = question("h100-sxm", Runtime::vllm_default(), "bf16", 4_096);
    let users_error = |q: Question| match answer(&q) {
        Err(CoreError::Setting {
            setting: Setting::Users,
            ..
        }) => {}
        other => panic!("{other:?}"),
    };
    for bad in [0, MAX_USERS + 1, u64::MAX] {
        users_error(Question {
            users: Some(bad),
            ..q.clone()
        });
    }
    // transformers is not a server; training has no users; batch and users say the same thing.
    users_error(Question {
        users: Some(4),
        runtime: Some(Runtime::TransformersCuda),
        ..q.clone()
    });
    users_error(Question {
        users: Some(4),
        runtime: Some(Runtime::TransformersCuda),
        mode: Mode::Lora(LoraSettings::default_settings()),
        ..q.clone()
    });
    users_error(Question {
        users: Some(4),
        batch: 2,
        ..q.clone()
    });
    // transformers without users: no serving section.
    let a = answer(&Question {
        runtime: Some(Runtime::TransformersCuda),
        format: Some(WeightFormat::Bf16),
        kv_dtype: Some(KvDtype::Bf16),
        ..q.clone()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(a.serving.is_none());
    // Not even one user fits: 0, and no speed at the maximum.
    let q = question("rtx-3060", Runtime::LlamaCpp, "Q8_0", 131_072);
    let s = answer(&q)
        .unwrap_or_else(|e| panic!("{e}"))
        .serving
        .unwrap_or_else(|| panic!("serves"));
    assert_eq!(s.max_users, 0);
    assert!(s.at_max_users.is_none());
}

#[test]
fn sliding_window_models_find_their_most_users_too() {
    // Gemma-3's sliding layers share their cells with the micro-batch in llama.cpp, so memory
    // grows by less than one user's cache per user: the search still finds the edge.
    for (device, context) in [("rtx-4090", 8_192), ("m2-10c-16gb", 32_768)] {
        let q = Question {
            format: Some("Q4_K_M".parse().unwrap_or_else(|e| panic!("{e}"))),
            runtime: Some(Runtime::LlamaCpp),
            context: ContextAsk::Tokens(context),
            ..Question::new(
                fixture_model("gemma-3-12b-it"),
                devices::find(device).unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let s = answer(&q)
            .unwrap_or_else(|e| panic!("{e}"))
            .serving
            .unwrap_or_else(|| panic!("serves"));
        if s.max_users > 0 {
            assert!(fits_with(&q, s.max_users), "{device}");
        }
        assert!(!fits_with(&q, s.max_users + 1), "{device}: {}", s.max_users);
    }
}
