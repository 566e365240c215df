//! `headroom fit` on checkpoint files: a `.gguf` file (shape and weights from its header), a
//! folder of `.safetensors` shards (with or without `model.safetensors.index.json`), and broken
//! ones (truncated, a missing or duplicated shard, a header past the read cap). Every file is
//! generated here with core's header writer; only headers are read by the binary.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use headroom_core::files::{self, writer};
use serde_json::Value;

use crate::util::{BIN, data_dir, json_and_stderr, no_cache, text};

fn headroom(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        // Nothing here may reach a network or a real Hugging Face cache.
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", no_cache("checkpoints"))
        .output()
        .expect("run headroom")
}

/// Run `fit PATH --device rtx-4090 --json`: the JSON object and stderr.
fn fit_json(path: &Path) -> (Value, String) {
    let out = headroom(&[
        "fit",
        &path.display().to_string(),
        "--device",
        "rtx-4090",
        "--json",
    ]);
    json_and_stderr(&out)
}

/// Run `fit PATH`, expecting exit code 2 and an error holding every needle.
fn fit_fails(path: &Path, needles: &[&str]) {
    let out = headroom(&["fit", &path.display().to_string(), "--device", "rtx-4090"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        text(&out.stdout)
    );
    for n in needles {
        assert!(stderr.contains(n), "`{n}` missing from:\n{stderr}");
    }
}

/// A fresh scratch folder for one test.
fn scratch(test: &str) -> PathBuf {
    crate::util::scratch(&format!("checkpoints-{test}"))
}

const F32: u32 = 0;
const Q4_K: u32 = 12;
const Q6_K: u32 = 14;

/// A 2-layer llama in a Q4_K_M-style mix, as llama.cpp lays it out.
fn tiny_gguf() -> writer::HeaderFixture {
    let (hidden, ffn, vocab, kv) = (256u64, 512u64, 1024u64, 128u64);
    let mut tensors: Vec<(String, Vec<u64>, u32)> =
        vec![("token_embd.weight".into(), vec![vocab, hidden], Q4_K)];
    for i in 0..2 {
        for (name, shape, ty) in [
            ("attn_norm.weight", vec![hidden], F32),
            ("attn_q.weight", vec![hidden, hidden], Q4_K),
            ("attn_k.weight", vec![kv, hidden], Q4_K),
            ("attn_v.weight", vec![kv, hidden], Q6_K),
            ("attn_output.weight", vec![hidden, hidden], Q4_K),
            ("ffn_norm.weight", vec![hidden], F32),
            ("ffn_gate.weight", vec![ffn, hidden], Q4_K),
            ("ffn_up.weight", vec![ffn, hidden], Q4_K),
            ("ffn_down.weight", vec![hidden, ffn], Q6_K),
        ] {
            tensors.push((format!("blk.{i}.{name}"), shape, ty));
        }
    }
    tensors.push(("output_norm.weight".into(), vec![hidden], F32));
    tensors.push(("output.weight".into(), vec![vocab, hidden], Q6_K));
    let defs: Vec<writer::GgufTensorDef<'_>> = tensors
        .iter()
        .map(|(n, s, t)| (n.as_str(), s.as_slice(), *t))
        .collect();
    writer::gguf(
        "llama",
        &[
            ("general.file_type", 15),
            ("llama.block_count", 2),
            ("llama.embedding_length", 256),
            ("llama.feed_forward_length", 512),
            ("llama.attention.head_count", 4),
            ("llama.attention.head_count_kv", 2),
            ("llama.context_length", 2048),
        ],
        &defs,
    )
}

#[test]
fn fit_reads_a_gguf_file() {
    let dir = scratch("gguf");
    let f = tiny_gguf();
    let path = dir.join("tiny-Q4_K_M.gguf");
    std::fs::write(&path, f.file()).expect("write");
    let header = files::gguf_header::parse(&f.header, Some(f.file_bytes)).expect("parse");
    let (obj, stderr) = fit_json(&path);
    assert_eq!(obj["model"], "tiny-Q4_K_M.gguf");
    assert!(
        obj["model_source"]
            .as_str()
            .is_some_and(|s| s.starts_with("GGUF header of")),
        "{obj}"
    );
    let line = format!(
        "checkpoint tiny-Q4_K_M.gguf: 21 tensors, {} parameters, {} bytes",
        header.parameters(),
        header.tensor_bytes()
    );
    assert!(stderr.contains(&line), "`{line}` missing from:\n{stderr}");
    assert!(stderr.contains("as Q4_K_M"), "{stderr}");
    // The answer is for the file as shipped: its format, its tensors' bytes as the weights.
    assert_eq!(obj["quant"], "Q4_K_M", "{obj}");
    assert_eq!(obj["weights_bytes"], header.tensor_bytes(), "{obj}");
    assert_eq!(obj["checkpoint"]["checkpoint_bytes"], header.tensor_bytes());
    assert_eq!(
        obj["checkpoint"]["checkpoint_parameters"],
        header.parameters()
    );
    // A folder holding just that file (no config.json) reads the same file.
    let (obj, _) = fit_json(&dir);
    assert_eq!(obj["model"], "tiny-Q4_K_M.gguf");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn regression_truncated_gguf_download_is_an_error_naming_the_tensor() {
    let dir = scratch("truncated");
    let f = tiny_gguf();
    let path = dir.join("cut.gguf");
    let mut bytes = f.file();
    bytes.truncate(bytes.len() - 1000);
    std::fs::write(&path, bytes).expect("write");
    fit_fails(
        &path,
        &[
            "cut.gguf",
            "truncated",
            "`output.weight`",
            "download it again",
        ],
    );
    // Cut inside the header itself.
    std::fs::write(&path, &f.header[..100]).expect("write");
    fit_fails(&path, &["cut.gguf", "truncated", "GGUF header"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gguf_header_over_the_first_read_is_read_in_full() {
    // 20,000 tensors with long names: a header of about 2.5 MB, past the first 1 MiB read.
    let dir = scratch("long-header");
    let names: Vec<String> = (0..20_000)
        .map(|i| format!("blk.{}.t{i}_{}.weight", i % 2, "x".repeat(90)))
        .chain(["token_embd.weight".to_owned()])
        .collect();
    let defs: Vec<writer::GgufTensorDef<'_>> = names
        .iter()
        .map(|n| {
            let shape: &[u64] = if n == "token_embd.weight" {
                &[100, 64]
            } else {
                &[8]
            };
            (n.as_str(), shape, F32)
        })
        .collect();
    let f = writer::gguf(
        "llama",
        &[
            ("llama.block_count", 2),
            ("llama.embedding_length", 64),
            ("llama.feed_forward_length", 128),
            ("llama.attention.head_count", 4),
        ],
        &defs,
    );
    assert!(f.header.len() > 2 << 20, "{}", f.header.len());
    let path = dir.join("long.gguf");
    std::fs::write(&path, f.file()).expect("write");
    let (obj, stderr) = fit_json(&path);
    assert_eq!(obj["model"], "long.gguf");
    assert!(stderr.contains("20001 tensors"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn regression_gguf_string_past_the_read_cap_stops_without_reading_the_file() {
    // A metadata string claiming 1 GiB inside a 2 GiB (sparse) file: more than any header.
    let dir = scratch("cap");
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    bytes.extend(12u64.to_le_bytes());
    bytes.extend(b"general.name");
    bytes.extend(8u32.to_le_bytes());
    bytes.extend((1u64 << 30).to_le_bytes());
    let path = dir.join("huge.gguf");
    std::fs::write(&path, &bytes).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(2 << 30))
        .expect("extend");
    fit_fails(&path, &["huge.gguf", "64 MiB", "corrupt"]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn qwen_config() -> PathBuf {
    data_dir().join("hf-configs/Qwen2.5-0.5B.json")
}

/// A folder with Qwen2.5-0.5B's config.json and two small shards.
fn sharded_folder(test: &str) -> PathBuf {
    let dir = scratch(test);
    std::fs::copy(qwen_config(), dir.join("config.json")).expect("copy config");
    let a = writer::safetensors(&[
        ("model.embed_tokens.weight", "BF16", &[1000, 64]),
        ("model.norm.weight", "F32", &[64]),
    ]);
    let b = writer::safetensors(&[("lm_head.weight", "BF16", &[1000, 64])]);
    std::fs::write(dir.join("model-00001-of-00002.safetensors"), a.file()).expect("write");
    std::fs::write(dir.join("model-00002-of-00002.safetensors"), b.file()).expect("write");
    dir
}

#[test]
fn fit_reads_a_folder_of_safetensors_shards() {
    let dir = sharded_folder("shards");
    let (obj, stderr) = fit_json(&dir);
    assert!(obj["model"].is_string(), "{obj}");
    let line = format!(
        "checkpoint model-00001-of-00002.safetensors, model-00002-of-00002.safetensors: 3 \
         tensors, 128064 parameters, {} bytes",
        256_000 + 256
    );
    assert!(stderr.contains(&line), "`{line}` missing from:\n{stderr}");
    assert!(stderr.contains("as bf16"), "{stderr}");
    // The weights are the shards' bytes; the config describes a whole model, and the answer
    // says the two disagree.
    assert_eq!(obj["quant"], "bf16", "{obj}");
    assert_eq!(obj["weights_bytes"], 256_256, "{obj}");
    assert_eq!(obj["checkpoint"]["parameters_agree"], false, "{obj}");
    assert!(
        obj["assumptions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s
                .as_str()
                .is_some_and(|s| s.contains("holds 128064 parameters")))),
        "{obj}"
    );
    // `model.safetensors` beside other safetensors files (Mistral's `consolidated.safetensors`
    // holds the same weights): only it counts.
    let single = writer::safetensors(&[("lm_head.weight", "BF16", &[10, 64])]);
    std::fs::write(dir.join("model.safetensors"), single.file()).expect("write");
    let (_, stderr) = fit_json(&dir);
    assert!(
        stderr.contains("checkpoint model.safetensors: 1 tensors, 640 parameters"),
        "{stderr}"
    );
    std::fs::remove_file(dir.join("model.safetensors")).expect("rm");
    // One shard given by path: its folder's config.json, that shard's weights.
    let (_, stderr) = fit_json(&dir.join("model-00002-of-00002.safetensors"));
    assert!(
        stderr.contains("checkpoint model-00002-of-00002.safetensors: 1 tensors, 64000 parameters"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_index_names_the_shards_and_a_missing_one_is_an_error() {
    let dir = sharded_folder("index");
    // A stray shard of another checkpoint is ignored when the index says which shards count.
    let stray = writer::safetensors(&[("lm_head.weight", "F32", &[4])]);
    std::fs::write(dir.join("other.safetensors"), stray.file()).expect("write");
    let index = r#"{"metadata":{"total_size":256256},"weight_map":{
        "model.embed_tokens.weight":"model-00001-of-00002.safetensors",
        "model.norm.weight":"model-00001-of-00002.safetensors",
        "lm_head.weight":"model-00002-of-00002.safetensors"}}"#;
    std::fs::write(dir.join("model.safetensors.index.json"), index).expect("write");
    let (_, stderr) = fit_json(&dir);
    assert!(
        stderr.contains("3 tensors, 128064 parameters, 256256 bytes"),
        "{stderr}"
    );
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).expect("rm");
    fit_fails(
        &dir,
        &["model-00002-of-00002.safetensors", "download it too"],
    );
    // An index may not point outside the folder.
    let escape = r#"{"weight_map":{"w":"../secret.safetensors"}}"#;
    std::fs::write(dir.join("model.safetensors.index.json"), escape).expect("write");
    fit_fails(
        &dir,
        &["../secret.safetensors", "not a .safetensors file name"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn regression_duplicate_tensors_across_shards_are_an_error() {
    let dir = sharded_folder("duplicates");
    let copy = writer::safetensors(&[("lm_head.weight", "BF16", &[1000, 64])]);
    std::fs::write(dir.join("model-copy.safetensors"), copy.file()).expect("write");
    fit_fails(
        &dir,
        &[
            "`lm_head.weight`",
            "model-00002-of-00002.safetensors",
            "model-copy.safetensors",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn regression_safetensors_header_length_beyond_the_file() {
    let dir = sharded_folder("header-length");
    let mut bytes = 50_000_000u64.to_le_bytes().to_vec();
    bytes.extend(b"{}");
    std::fs::write(dir.join("model-00002-of-00002.safetensors"), bytes).expect("write");
    fit_fails(
        &dir,
        &[
            "model-00002-of-00002.safetensors",
            "truncated",
            "50000000-byte",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_mlx_folder_counts_packed_weights_with_the_config_group_size() {
    let dir = scratch("mlx");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(qwen_config()).expect("read")).expect("json");
    config["quantization"] = serde_json::json!({"group_size": 64, "bits": 4});
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write");
    // 4-bit g64, in = 512, out = 256: U32 [out, in / 8], f16 scales and biases [out, in / 64].
    let shard = writer::safetensors(&[
        ("l.q_proj.weight", "U32", &[256, 64]),
        ("l.q_proj.scales", "F16", &[256, 8]),
        ("l.q_proj.biases", "F16", &[256, 8]),
    ]);
    std::fs::write(dir.join("model.safetensors"), shard.file()).expect("write");
    let (_, stderr) = fit_json(&dir);
    let line = format!(
        "checkpoint model.safetensors: 3 tensors, {} parameters, {} bytes",
        256 * 512,
        256 * 64 * 4 + 2 * 256 * 8 * 2
    );
    assert!(stderr.contains(&line), "`{line}` missing from:\n{stderr}");
    assert!(stderr.contains("as mlx-4bit-g64"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
