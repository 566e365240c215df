//! `headroom fit owner/name` and `owner/name:file.gguf` reading checkpoint headers from a local
//! stand-in for the Hugging Face Hub by HTTP Range requests.
//!
//! A `TcpListener` on 127.0.0.1 serves generated files at the Hub's URL layout: config.json,
//! `model.safetensors.index.json`, and "virtual" shards and GGUF files (a real header followed by
//! as many zero bytes as the tensors take, produced only if asked for). Every request's path and
//! the bytes sent are recorded, so the tests check that only headers crossed the wire.

use std::{
    collections::BTreeMap,
    io::Write,
    net::TcpStream,
    process::{Command, Output},
    sync::{Arc, Mutex},
};

use headroom_core::files::{self, writer};

use crate::util::{
    BIN, data, hub_command, json_and_stderr as ok_json, listen, no_cache, read_request, scratch,
};

/// A file the server holds: its first bytes and its whole (virtual) size.
#[derive(Clone)]
struct Served {
    head: Vec<u8>,
    size: u64,
}

/// One request: its path and the body bytes sent back.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    sent: u64,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serve `routes` (URL path → file) until the test process ends; anything else is 404.
fn serve(routes: BTreeMap<String, Served>) -> (String, Log) {
    let (listener, endpoint) = listen();
    let seen: Log = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if let Some(request) = answer(stream, &routes) {
                log.lock().expect("log").push(request);
            }
        }
    });
    (endpoint, seen)
}

fn answer(mut stream: TcpStream, routes: &BTreeMap<String, Served>) -> Option<Seen> {
    let request = read_request(&stream)?;
    // `bytes=0-N`: the only form headroom sends.
    let range_end = request
        .header("range")
        .and_then(|v| v.strip_prefix("bytes=0-"))
        .and_then(|n| n.parse::<u64>().ok());
    let path = request.path;
    let Some(file) = routes.get(&path) else {
        let body = r#"{"error":"Entry not found"}"#;
        let response = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).ok()?;
        return Some(Seen { path, sent: 0 });
    };
    let (status, end) = match range_end {
        Some(last) => ("206 Partial Content", (last + 1).min(file.size)),
        None => ("200 OK", file.size),
    };
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {end}\r\nconnection: close\r\n");
    if range_end.is_some() {
        head.push_str(&format!(
            "content-range: bytes 0-{}/{}\r\n",
            end.saturating_sub(1),
            file.size
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let from_head = (end as usize).min(file.head.len());
    stream.write_all(&file.head[..from_head]).ok()?;
    // Zeros stand for tensor data; written in pieces so a huge virtual file costs no memory.
    let mut zeros_left = end - from_head as u64;
    let chunk = [0u8; 64 * 1024];
    while zeros_left > 0 {
        let n = zeros_left.min(chunk.len() as u64) as usize;
        if stream.write_all(&chunk[..n]).is_err() {
            break;
        }
        zeros_left -= n as u64;
    }
    Some(Seen { path, sent: end })
}

fn fixture(f: &writer::HeaderFixture) -> Served {
    Served {
        head: f.header.clone(),
        size: f.file_bytes,
    }
}

fn text(s: &str) -> Served {
    Served {
        head: s.as_bytes().to_vec(),
        size: s.len() as u64,
    }
}

fn qwen_config() -> String {
    data("hf-configs/Qwen2.5-0.5B.json")
}

/// `headroom fit ARG --device rtx-4090 --json` against `endpoint`.
fn fit(endpoint: &str, arg: &str) -> Output {
    hub_command(endpoint, &no_cache("hub-checkpoints"))
        .args(["fit", arg, "--device", "rtx-4090", "--json"])
        .output()
        .expect("run headroom")
}

/// Sharded safetensors whose data is 2 GiB a shard: reading it would show in the log at once.
fn big_shards() -> (writer::HeaderFixture, writer::HeaderFixture) {
    let a = writer::safetensors(&[
        ("model.embed_tokens.weight", "BF16", &[32768, 32768]),
        ("model.norm.weight", "F32", &[64]),
    ]);
    let b = writer::safetensors(&[("lm_head.weight", "BF16", &[32768, 32768])]);
    (a, b)
}

#[test]
fn sharded_safetensors_headers_are_read_by_range_requests() {
    let (a, b) = big_shards();
    let repo = "/acme/sharded/resolve/main";
    let index = r#"{"metadata":{"total_size":4294967552},"weight_map":{
        "model.embed_tokens.weight":"model-00001-of-00002.safetensors",
        "model.norm.weight":"model-00001-of-00002.safetensors",
        "lm_head.weight":"model-00002-of-00002.safetensors"}}"#;
    let routes = BTreeMap::from([
        (format!("{repo}/config.json"), text(&qwen_config())),
        (format!("{repo}/model.safetensors.index.json"), text(index)),
        (
            format!("{repo}/model-00001-of-00002.safetensors"),
            fixture(&a),
        ),
        (
            format!("{repo}/model-00002-of-00002.safetensors"),
            fixture(&b),
        ),
    ]);
    let (endpoint, seen) = serve(routes);
    let (obj, stderr) = ok_json(&fit(&endpoint, "acme/sharded"));
    assert_eq!(obj["model"], "acme/sharded");
    let bytes = 2 * 32768u64 * 32768 * 2 + 256;
    let line = format!(
        "checkpoint model-00001-of-00002.safetensors, model-00002-of-00002.safetensors: 3 \
         tensors, {} parameters, {bytes} bytes",
        2 * 32768u64 * 32768 + 64
    );
    assert!(stderr.contains(&line), "`{line}` missing from:\n{stderr}");
    // Only headers crossed the wire: each shard read as its 8-byte length, then its header.
    let seen = seen.lock().expect("log").clone();
    for s in &seen {
        if s.path.ends_with(".safetensors") {
            let limit = if s.path.contains("00001") {
                a.header.len()
            } else {
                b.header.len()
            };
            assert!(
                s.sent <= limit as u64,
                "{s:?} read past the header ({limit} bytes)"
            );
        }
    }
    assert_eq!(
        seen.iter()
            .filter(|s| s.path.ends_with(".safetensors"))
            .count(),
        4,
        "{seen:?}"
    );
}

#[test]
fn a_single_model_safetensors_is_read_and_a_repo_without_one_is_fine() {
    let one = writer::safetensors(&[("lm_head.weight", "F8_E4M3", &[1000, 64])]);
    let routes = BTreeMap::from([
        (
            "/acme/single/resolve/main/config.json".to_owned(),
            text(&qwen_config()),
        ),
        (
            "/acme/single/resolve/main/model.safetensors".to_owned(),
            fixture(&one),
        ),
        (
            "/acme/bare/resolve/main/config.json".to_owned(),
            text(&qwen_config()),
        ),
    ]);
    let (endpoint, _) = serve(routes);
    let (_, stderr) = ok_json(&fit(&endpoint, "acme/single"));
    assert!(
        stderr.contains("checkpoint model.safetensors: 1 tensors, 64000 parameters, 64000 bytes"),
        "{stderr}"
    );
    assert!(stderr.contains("as fp8"), "{stderr}");
    // No index, no model.safetensors (a .bin or GGUF-only repository): the config answers alone.
    let (obj, stderr) = ok_json(&fit(&endpoint, "acme/bare"));
    assert_eq!(obj["model"], "acme/bare");
    assert!(!stderr.contains("checkpoint"), "{stderr}");
}

#[test]
fn a_broken_shard_on_the_hub_is_a_note_not_a_failure() {
    let (a, _) = big_shards();
    let repo = "/acme/broken/resolve/main";
    let index = r#"{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#;
    let routes = BTreeMap::from([
        (format!("{repo}/config.json"), text(&qwen_config())),
        (format!("{repo}/model.safetensors.index.json"), text(index)),
        (
            format!("{repo}/model-00001-of-00002.safetensors"),
            fixture(&a),
        ),
    ]);
    let (endpoint, _) = serve(routes);
    let (obj, stderr) = ok_json(&fit(&endpoint, "acme/broken"));
    assert_eq!(obj["model"], "acme/broken");
    assert!(
        stderr.contains("model-00002-of-00002.safetensors is listed in the index but missing"),
        "{stderr}"
    );
    assert!(stderr.contains("estimated from config.json"), "{stderr}");
}

#[test]
fn one_gguf_file_of_a_repo_is_read_by_its_header() {
    // Q4_K tensors totalling about 300 MB: the reads must stop at the first 1 MiB.
    let f = writer::gguf(
        "llama",
        &[
            ("general.file_type", 15),
            ("llama.block_count", 2),
            ("llama.embedding_length", 4096),
            ("llama.feed_forward_length", 14336),
            ("llama.attention.head_count", 32),
            ("llama.attention.head_count_kv", 8),
        ],
        &[
            ("token_embd.weight", &[32768, 4096], 12),
            ("blk.0.attn_q.weight", &[4096, 4096], 12),
            ("blk.1.attn_q.weight", &[4096, 4096], 12),
            ("output.weight", &[32768, 4096], 14),
        ],
    );
    let header = files::gguf_header::parse(&f.header, Some(f.file_bytes)).expect("parse");
    let routes = BTreeMap::from([(
        "/acme/ggufs/resolve/main/tiny-Q4_K_M.gguf".to_owned(),
        fixture(&f),
    )]);
    let (endpoint, seen) = serve(routes);
    let (obj, stderr) = ok_json(&fit(&endpoint, "acme/ggufs:tiny-Q4_K_M.gguf"));
    assert_eq!(obj["model"], "tiny-Q4_K_M.gguf");
    let line = format!(
        "checkpoint tiny-Q4_K_M.gguf: 4 tensors, {} parameters, {} bytes",
        header.parameters(),
        header.tensor_bytes()
    );
    assert!(stderr.contains(&line), "`{line}` missing from:\n{stderr}");
    let seen = seen.lock().expect("log").clone();
    let sent: u64 = seen.iter().map(|s| s.sent).sum();
    assert!(sent <= 1 << 20, "{sent} bytes read: {seen:?}");
    // A file the repository does not have.
    let out = fit(&endpoint, "acme/ggufs:missing.gguf");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no file `missing.gguf` in `acme/ggufs`"),
        "{stderr}"
    );
}

#[test]
fn offline_reads_the_shards_in_the_hugging_face_cache() {
    let cache = scratch("hub-ckpt-cache");
    let repo = cache.join("models--acme--cached");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).expect("mkdir");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
    std::fs::write(repo.join("refs/main"), commit).expect("write ref");
    std::fs::write(snapshot.join("config.json"), qwen_config()).expect("write config");
    let shard = writer::safetensors(&[("lm_head.weight", "BF16", &[1000, 64])]);
    std::fs::write(snapshot.join("model.safetensors"), shard.file()).expect("write shard");
    let out = Command::new(BIN)
        .args(["fit", "acme/cached", "--device", "rtx-4090", "--json"])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", &cache)
        .output()
        .expect("run headroom");
    let (_, stderr) = ok_json(&out);
    assert!(
        stderr.contains("checkpoint model.safetensors: 1 tensors, 64000 parameters, 128000 bytes"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}
