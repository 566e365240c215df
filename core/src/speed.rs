//! Speed: decode tokens/s (bandwidth ÷ bytes read per token) and prefill tokens/s (FLOPs ÷ rate).
