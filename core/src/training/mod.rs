//! Training memory: full fine-tune (fp32, bf16 mixed precision + AdamW, pure bf16, 8-bit Adam,
//! SGD), LoRA, QLoRA, gradient checkpointing.
//!
//! ## Bytes per trained parameter
//! | precision | weights | grads | master | AdamW | 8-bit Adam | SGD |
//! |---|---|---|---|---|---|---|
//! | fp32 | 4 | 4 | – | 8 | 2 | 0 |
//! | bf16 mixed | 2 | 2 | 4 | 8 | 2 | 0 |
//! | pure bf16 | 2 | 2 | – | 4 | 2 | 0 |
//!
//! bf16 mixed precision is 16 bytes per parameter with AdamW, not 8 (ZeRO, Rajbhandari et al.
//! 2020, §3.1: 2 + 2 + 4 + 4 + 4). PyTorch AMP with fp32 parameters arrives at the same 16
//! (4 weights + 4 grads + 8 moments). *Pure* bf16 (a model loaded in bf16 handed to
//! `torch.optim.AdamW`) keeps the moments in the parameters' dtype: 8 bytes per parameter.
//! bitsandbytes 8-bit Adam keeps two 8-bit moments (2 bytes; its per-2048-block fp32 absmax is
//! 0.004 B/param, ignored). SGD here is plain SGD without momentum (no state).
//!
//! PyTorch's default AdamW on CUDA is the `foreach` implementation: its step allocates one
//! temporary the size of all moments' dtype (`torch._foreach_sqrt(exp_avg_sqs)`), so the step
//! peak adds one more state-sized copy (4 B/param fp32 moments, 2 B/param bf16). It happens after
//! the backward pass has freed the activations, so the peak is `max(activations, step temp)`.
//!
//! ## Activations per layer (stored for the backward pass)
//! Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", §4)
//! count `s·b·h·(34 + 5·a·s/h)` bytes per layer for a GPT layer in 16-bit with dropout. For the
//! Llama-style layers here (RMSNorm, no dropout, GQA, SwiGLU) the same bookkeeping of what each
//! operation saves gives, per token, in elements of the activation type (2 bytes in bf16):
//! `2·h + 2·q_dim + 2·kv_dim + 4·I` — norm outputs feeding projections (2·h), rotated q and k and
//! v saved by attention (`q_dim + 2·kv_dim`, unexpanded), attention output feeding `o_proj`
//! (`q_dim`), and the MLP's gate, SiLU(gate), up, and product (`4·I`) — plus the norms' own saved
//! tensors in bytes: transformers' RMSNorm runs in fp32 and keeps an fp32 input copy, and with a
//! trained weight the normalized tensor (see [`norm_saved_bytes_per_token`]). A frozen base
//! (LoRA) drops the norm outputs and `down_proj`'s input: frozen linears keep no inputs. MoE
//! layers store `3·h + 4·I_expert` for each of the `k` experts a token visits when the experts
//! are trained (transformers 5's grouped_mm working set, see `activations`), `h + 4·I_expert` when
//! they are frozen (LoRA: a frozen GEMM keeps no input for a weight gradient), plus the shared
//! experts and the router logits.
//! Without fused attention the scores are stored too: `heads · s` per token, in the activation
//! type (for `attn @ V`) and fp32 (softmax output), Korthikanti's `5·a·s/h` term.
//! The loss: `b·s·vocab` logits in bf16, their fp32 upcast, and the fp32 log-softmax saved by
//! cross-entropy (transformers' `ForCausalLMLoss`).
//!
//! With gradient checkpointing (transformers wraps each decoder layer) only each layer's input
//! (`h` per token) is stored, plus one layer's full activations while it is recomputed.
//!
//! LoRA uses the same per-layer count without what only trained weights need (the frozen-base
//! rules above: no norm outputs, no `down_proj` input) plus what peft keeps per adapted matrix: the fp32 copy of its input
//! (`in · 4` bytes, adapters are fp32) and `lora_A`'s fp32 output (`r · 4`). On MoE models peft
//! turns gate/up/down targets into adapters on the stacked experts, which materialize `W + ΔW`
//! of every expert (bf16) per MoE layer and keep it for the backward pass. QLoRA adds one bf16
//! dequantized copy of the largest 4-bit matrix (bitsandbytes dequantizes per matmul).
//!
//! QLoRA after peft's `prepare_model_for_kbit_training` runs its activations in fp32 (the
//! upcast norms and bitsandbytes' 4-bit layers return fp32). peft then keeps each adapted
//! module's input itself, not a copy: one tensor for q/k/v, one for gate/up, the product for
//! down, and nothing more for `o_proj` (its input is the attention output the attention keeps).
//! And fp32 queries with grouped key/value heads leave SDPA no fused kernel, so it runs its math
//! path, which keeps the scaled query, the keys and values repeated to every query head and the
//! fp32 softmax output (`heads · s · 4` bytes per token): the bulk of such a layer.
//!
//! LoRA on a subset of layers (peft's `layers_to_transform`, [`LoraSettings::layers`]): only
//! those layers' adapters are trained, and without checkpointing autograd keeps activations only
//! from the first adapted layer to the loss (earlier layers have no input that requires grad).
//! With checkpointing peft makes the embedding output require grad, so every layer keeps its
//! input as before. Not yet measured on a GPU (core/docs/MEMORY.md).

//!
//! ## Where each part lives
//! - `training/mode.rs`: what is trained and how ([`Mode`], LoRA and full fine-tune settings,
//!   their text form and the layer-list grammar);
//! - `training/lora.rs`: LoRA targets and the adapters' parameter counts;
//! - `training/saved_activations.rs`: what a training step keeps for the backward pass;
//! - `training/memory.rs`: the whole step — weights, gradients, master copy, optimizer state,
//!   activations.

mod lora;
mod memory;
mod mode;
mod saved_activations;

pub use lora::*;
pub use memory::*;
pub use mode::*;
pub use saved_activations::*;
