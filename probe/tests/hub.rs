//! `headroom fit owner/name` against a local stand-in for the Hugging Face Hub.
//!
//! A `TcpListener` on 127.0.0.1 serves fixture configs at the Hub's URL layout
//! (`/{owner}/{name}/resolve/main/config.json`) and records each request's path and
//! `Authorization` header. `HF_ENDPOINT` points the binary at it. Each server answers a fixed number
//! of connections and then ends, and every socket has a read timeout, so nothing outlives a test.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use crate::util::{
    SOCKET_TIMEOUT, closed_port, data, hub_command, json as json_of, listen, no_cache,
    read_request, scratch, stderr,
};

/// The token the gated route accepts.
const TOKEN: &str = "hf_test_token_123";

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
}

/// Serve `connections` requests, then stop. Routes:
/// - `/acme/tiny/…/config.json` → 200, Llama-3.2-1B's config;
/// - `/gated/model/…/config.json` → 200 with `Bearer TOKEN`, else 401;
/// - `/broken/server/…` → 500;
/// - `/acme/notjson/…` → 200 with a body that is not JSON;
/// - anything else → 404.
fn serve(connections: usize) -> (String, Arc<Mutex<Vec<Seen>>>, JoinHandle<()>) {
    let (listener, endpoint) = listen();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let config = data("hf-configs/Llama-3.2-1B.json");
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(stream) = stream else { continue };
            if let Some(request) = answer(stream, &config) {
                log.lock().expect("log").push(request);
            }
        }
    });
    (endpoint, seen, handle)
}

fn answer(mut stream: TcpStream, config: &str) -> Option<Seen> {
    let request = read_request(&stream)?;
    let path = request.path.clone();
    let authorization = request.header("authorization").map(str::to_owned);
    let (status, body) = match path.as_str() {
        "/acme/tiny/resolve/main/config.json" => ("200 OK", config.to_owned()),
        "/gated/model/resolve/main/config.json" => {
            if authorization.as_deref() == Some(&format!("Bearer {TOKEN}")) {
                ("200 OK", config.to_owned())
            } else {
                (
                    "401 Unauthorized",
                    r#"{"error":"Access to model gated/model is restricted."}"#.to_owned(),
                )
            }
        }
        "/broken/server/resolve/main/config.json" => {
            ("500 Internal Server Error", "oops".to_owned())
        }
        "/acme/notjson/resolve/main/config.json" => ("200 OK", "<html>hello</html>".to_owned()),
        _ => (
            "404 Not Found",
            r#"{"error":"Repository not found"}"#.to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).ok()?;
    Some(Seen {
        path,
        authorization,
    })
}

/// `headroom fit ID --device rtx-4090 --json` against `endpoint`, with `token` as HF_TOKEN and
/// `cache` as the Hugging Face cache (an empty one when `None`, so a real cache never answers).
fn fit_with(endpoint: &str, id: &str, token: Option<&str>, cache: Option<&Path>) -> Command {
    let empty = no_cache("hub");
    let mut cmd = hub_command(endpoint, cache.unwrap_or(&empty));
    cmd.args(["fit", id, "--device", "rtx-4090", "--json"]);
    if let Some(token) = token {
        cmd.env("HF_TOKEN", token);
    }
    cmd
}

/// Run `headroom fit ID --device rtx-4090 --json` against `endpoint`, with `token` as HF_TOKEN.
fn fit(endpoint: &str, id: &str, token: Option<&str>) -> Output {
    fit_with(endpoint, id, token, None)
        .output()
        .expect("run headroom")
}

/// A Hugging Face cache holding `id` with Llama-3.2-1B's config, laid out as huggingface_hub
/// writes it.
fn cache_with(tag: &str, id: &str) -> PathBuf {
    let cache = scratch(&format!("hub-{tag}"));
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).expect("mkdir");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
    std::fs::write(repo.join("refs/main"), commit).expect("write ref");
    std::fs::write(
        snapshot.join("config.json"),
        data("hf-configs/Llama-3.2-1B.json"),
    )
    .expect("write config");
    cache
}

/// Exit code 2 and exactly one `error: ` line containing every one of `needles`.
fn assert_user_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{err}");
    assert!(out.stdout.is_empty(), "stdout must be empty on error");
    assert!(err.starts_with("error: "), "stderr:\n{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line; stderr:\n{err}"
    );
    for needle in needles {
        assert!(
            err.contains(needle),
            "`{needle}` missing from stderr:\n{err}"
        );
    }
}

/// Llama-3.2-1B's exact parameter count (param_counts.json).
fn llama_3_2_1b_params() -> u64 {
    let counts: serde_json::Value =
        serde_json::from_str(&data("hf-configs/param_counts.json")).expect("param_counts.json");
    counts["Llama-3.2-1B"]["params_total"]
        .as_u64()
        .expect("count")
}

#[test]
fn public_model_is_fetched_without_a_token() {
    let (endpoint, seen, server) = serve(1);
    let json = json_of(&fit(&endpoint, "acme/tiny", None));
    server.join().expect("server");
    assert_eq!(json["model"], "acme/tiny");
    assert_eq!(json["params_total"].as_u64(), Some(llama_3_2_1b_params()));
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/acme/tiny/resolve/main/config.json");
    assert_eq!(seen[0].authorization, None, "no token set, none sent");
}

#[test]
fn token_is_sent_as_bearer() {
    let (endpoint, seen, server) = serve(1);
    // A trailing slash on HF_ENDPOINT is allowed, as with huggingface_hub.
    let json = json_of(&fit(&format!("{endpoint}/"), "gated/model", Some(TOKEN)));
    server.join().expect("server");
    assert_eq!(json["params_total"].as_u64(), Some(llama_3_2_1b_params()));
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen[0].path, "/gated/model/resolve/main/config.json");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
}

#[test]
fn model_page_url_means_its_id() {
    let (endpoint, seen, server) = serve(1);
    let json = json_of(&fit(
        &endpoint,
        "https://huggingface.co/acme/tiny/tree/main",
        None,
    ));
    server.join().expect("server");
    assert_eq!(json["model"], "acme/tiny");
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen[0].path, "/acme/tiny/resolve/main/config.json");
}

#[test]
fn gated_without_token_says_accept_license_and_set_token() {
    let (endpoint, _, server) = serve(1);
    let out = fit(&endpoint, "gated/model", None);
    server.join().expect("server");
    assert_user_error(&out, &["gated/model", "401", "license", "HF_TOKEN"]);
}

#[test]
fn wrong_token_is_refused_and_said_so() {
    let (endpoint, _, server) = serve(1);
    let out = fit(&endpoint, "gated/model", Some("hf_wrong"));
    server.join().expect("server");
    assert_user_error(
        &out,
        &["gated/model", "401", "HF_TOKEN was sent and refused"],
    );
}

#[test]
fn missing_repo_is_404() {
    let (endpoint, _, server) = serve(1);
    let out = fit(&endpoint, "nobody/nothing", None);
    server.join().expect("server");
    assert_user_error(&out, &["nobody/nothing", "404", "config.json"]);
}

#[test]
fn server_error_is_reported() {
    let (endpoint, _, server) = serve(1);
    let out = fit(&endpoint, "broken/server", None);
    server.join().expect("server");
    assert_user_error(&out, &["HTTP 500", "local config.json"]);
}

#[test]
fn body_that_is_not_json_names_the_model() {
    let (endpoint, _, server) = serve(1);
    let out = fit(&endpoint, "acme/notjson", None);
    server.join().expect("server");
    assert_user_error(&out, &["acme/notjson", "JSON"]);
}

#[test]
fn refused_connection_is_a_network_failure() {
    let port = closed_port();
    let out = fit(&format!("http://127.0.0.1:{port}"), "acme/tiny", None);
    assert_user_error(&out, &["could not reach", "acme/tiny", "config.json"]);
}

#[test]
fn endpoint_that_is_not_a_url_is_rejected() {
    let out = fit("ftp://example.invalid", "acme/tiny", None);
    assert_user_error(&out, &["HF_ENDPOINT", "http"]);
}

#[test]
fn catalog_name_never_touches_the_network() {
    // A closed port: any request would fail. A catalog model must not make one.
    let port = closed_port();
    let out = fit(&format!("http://127.0.0.1:{port}"), "llama-3.1-8b", None);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", stderr(&out));
}

#[test]
fn offline_reads_the_local_cache() {
    let cache = cache_with("offline", "acme/cached");
    let port = closed_port();
    let out = fit_with(
        &format!("http://127.0.0.1:{port}"),
        "acme/cached",
        None,
        Some(&cache),
    )
    .env("HF_HUB_OFFLINE", "1")
    .output()
    .expect("run");
    let json = json_of(&out);
    assert_eq!(json["params_total"].as_u64(), Some(llama_3_2_1b_params()));
    assert!(
        json["model_source"]
            .as_str()
            .is_some_and(|s| s.contains("models--acme--cached")),
        "{json:#}"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn offline_without_cache_says_so() {
    let cache = scratch("hub-offline-empty");
    let out = fit_with("http://127.0.0.1:9", "acme/absent", None, Some(&cache))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run");
    assert_user_error(&out, &["HF_HUB_OFFLINE", "acme/absent", "config.json"]);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn unreachable_hub_falls_back_to_the_cache() {
    let cache = cache_with("fallback", "acme/cached");
    let port = closed_port();
    let out = fit_with(
        &format!("http://127.0.0.1:{port}"),
        "acme/cached",
        None,
        Some(&cache),
    )
    .output()
    .expect("run");
    let json = json_of(&out);
    assert_eq!(json["params_total"].as_u64(), Some(llama_3_2_1b_params()));
    assert!(
        stderr(&out).contains("unreachable; using the cached"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn http_errors_do_not_fall_back_to_the_cache() {
    // A 404 is an answer, not an outage: the cache must not hide a wrong id.
    let cache = cache_with("no-fallback", "nobody/nothing");
    let (endpoint, _, server) = serve(1);
    let out = fit_with(&endpoint, "nobody/nothing", None, Some(&cache))
        .output()
        .expect("run");
    server.join().expect("server");
    assert_user_error(&out, &["404"]);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn silent_server_times_out() {
    // Accepts the connection, reads the request, never answers.
    let (listener, endpoint) = listen();
    let server = std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            let _ = stream.set_read_timeout(Some(SOCKET_TIMEOUT));
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            // Hold the connection open until the client gives up and closes it.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                line.clear();
            }
        }
    });
    let started = std::time::Instant::now();
    let out = fit_with(&endpoint, "acme/slow", None, None)
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "1")
        .output()
        .expect("run");
    let waited = started.elapsed();
    server.join().expect("server");
    assert_user_error(&out, &["timed out after 1 s", "HF_HUB_DOWNLOAD_TIMEOUT"]);
    assert!(waited < SOCKET_TIMEOUT, "gave up after {waited:?}");
}

#[test]
fn bad_timeout_setting_is_rejected() {
    let out = fit_with("http://127.0.0.1:9", "acme/x", None, None)
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "soon")
        .output()
        .expect("run");
    assert_user_error(&out, &["HF_HUB_DOWNLOAD_TIMEOUT", "soon"]);
}
