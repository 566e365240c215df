//! Model files dropped on the page: only their headers are read.

pub mod gguf;
pub mod safetensors_header;
