//! GGUF block types and llama.cpp's file types (mixtures chosen tensor by tensor).
