//! Fetching `config.json` from the Hugging Face Hub (`$HF_ENDPOINT`, `$HF_TOKEN`).
