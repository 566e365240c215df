//! Search that forgives: catalog models by id, Hub id, family and a pasted Hugging Face URL;
//! devices by id, name and vendor. `4090`, `RTX 4090`, `m2 16`, `Qwen/Qwen3-8B`,
//! `https://huggingface.co/Qwen/Qwen3-8B` all find what a person means.
//!
//! Every word of the query must occur in the candidate's text (letters and digits only, case
//! ignored); among candidates that hold every word, an exact name wins, then the shortest id
//! (the plainest variant: `rtx-4090` before `rtx-4090-d`). Pure, so it is tested natively.

use headroom_core::{devices, model_catalog};

/// One candidate: its id, the label the list shows, and the texts it is found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Catalog id.
    pub id: String,
    /// What the suggestion list shows.
    pub label: String,
    /// Names that select it outright when typed in full (id, Hub id, its name part).
    exact: Vec<String>,
    /// Everything it is found by, squashed ([`squash`]).
    haystack: String,
}

/// Lower-case letters and digits only: `Qwen/Qwen3-8B` → `qwenqwen38b`.
pub fn squash(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A pasted Hugging Face address reduced to its `owner/name` (`https://huggingface.co/Qwen/
/// Qwen3-8B/tree/main` → `Qwen/Qwen3-8B`); other text is returned trimmed.
pub fn hub_id_of(text: &str) -> String {
    let t = text.trim();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|p| t.strip_prefix(p))
        .unwrap_or(t);
    let rest = ["huggingface.co/", "www.huggingface.co/", "hf.co/"]
        .iter()
        .find_map(|p| rest.strip_prefix(p));
    match rest {
        Some(path) => path.split('/').take(2).collect::<Vec<_>>().join("/"),
        None => t.to_string(),
    }
}

/// The query's words, squashed; a Hub address counts as its `owner/name`.
fn words(query: &str) -> Vec<String> {
    hub_id_of(query)
        .split(|c: char| c.is_whitespace() || c == '/' || c == ',')
        .map(squash)
        .filter(|w| !w.is_empty())
        .collect()
}

/// Every catalog model as a search candidate.
pub fn model_candidates() -> Vec<Candidate> {
    model_catalog::entries()
        .iter()
        .map(|e| {
            let repo = e.hub_id.rsplit('/').next().unwrap_or(&e.hub_id).to_string();
            Candidate {
                id: e.id.clone(),
                label: format!("{} — {} ({})", e.id, e.hub_id, e.published_params),
                exact: vec![squash(&e.id), squash(&e.hub_id), squash(&repo)],
                haystack: squash(&format!("{} {} {}", e.id, e.hub_id, e.family)),
            }
        })
        .collect()
}

/// Every catalog device as a search candidate.
pub fn device_candidates() -> Vec<Candidate> {
    devices::catalog()
        .iter()
        .map(|d| Candidate {
            id: d.id.clone(),
            label: format!("{} — {}", d.id, d.name),
            exact: vec![squash(&d.id), squash(&d.name)],
            haystack: squash(&format!("{} {} {}", d.id, d.name, d.vendor)),
        })
        .collect()
}

/// The candidates that match `query`, best first (at most `limit`). An empty query matches
/// nothing.
pub fn search<'a>(candidates: &'a [Candidate], query: &str, limit: usize) -> Vec<&'a Candidate> {
    let words = words(query);
    if words.is_empty() {
        return Vec::new();
    }
    let whole = squash(&hub_id_of(query));
    let mut hits: Vec<(u8, usize, &Candidate)> = candidates
        .iter()
        .filter(|c| words.iter().all(|w| c.haystack.contains(w.as_str())))
        .map(|c| {
            let rank = if c.exact.contains(&whole) {
                0
            } else if c.exact.iter().any(|e| e.starts_with(&whole)) {
                1
            } else {
                2
            };
            (rank, c.id.len(), c)
        })
        .collect();
    hits.sort_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
    hits.into_iter().take(limit).map(|(_, _, c)| c).collect()
}

/// Whether `query` names `candidate` outright (its id, Hub id or name in full).
pub fn is_exact(candidate: &Candidate, query: &str) -> bool {
    candidate.exact.contains(&squash(&hub_id_of(query)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_model(q: &str) -> Option<String> {
        search(&model_candidates(), q, 1)
            .first()
            .map(|c| c.id.clone())
    }

    fn first_device(q: &str) -> Option<String> {
        search(&device_candidates(), q, 1)
            .first()
            .map(|c| c.id.clone())
    }

    #[test]
    fn models_are_found_by_every_name_a_person_uses() {
        for q in [
            "qwen3-8b",
            "Qwen3-8B",
            "Qwen/Qwen3-8B",
            "qwen3 8b",
            "https://huggingface.co/Qwen/Qwen3-8B",
            "https://huggingface.co/Qwen/Qwen3-8B/tree/main",
            "  hf.co/Qwen/Qwen3-8B ",
        ] {
            assert_eq!(first_model(q).as_deref(), Some("qwen3-8b"), "{q}");
        }
        assert_eq!(
            first_model("meta-llama/Llama-3.1-8B").as_deref(),
            Some("llama-3.1-8b")
        );
        assert_eq!(first_model("zzzz-nothing"), None);
        assert_eq!(first_model("   "), None);
    }

    #[test]
    fn devices_are_found_by_number_name_and_vendor() {
        assert_eq!(first_device("4090").as_deref(), Some("rtx-4090"));
        assert_eq!(first_device("RTX 4090").as_deref(), Some("rtx-4090"));
        assert_eq!(first_device("rtx-4090").as_deref(), Some("rtx-4090"));
        let m2 = first_device("m2 16").expect("an M2 with 16 GB");
        assert!(m2.starts_with("m2") && m2.contains("16"), "{m2}");
        assert!(first_device("h100").is_some_and(|d| d.starts_with("h100")));
    }

    #[test]
    fn hub_addresses_reduce_to_owner_and_name() {
        assert_eq!(
            hub_id_of("https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json"),
            "Qwen/Qwen3-8B"
        );
        assert_eq!(hub_id_of(" Qwen/Qwen3-8B "), "Qwen/Qwen3-8B");
    }
}
