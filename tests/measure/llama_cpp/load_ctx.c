// Load a GGUF on the CPU and create one llama.cpp context with the given settings, then exit.
//
// llama.cpp logs what it allocates while doing so (model buffers, KV cache, output buffer, and the
// compute buffer reserved for the worst-case graph); this program forwards every log line to
// stderr, and measure.py parses them. Nothing is evaluated.
//
// usage: load_ctx MODEL.gguf N_CTX TYPE_K TYPE_V FLASH_ATTN(0|1) N_UBATCH N_SEQ KV_UNIFIED(0|1)
//   TYPE_K / TYPE_V: f16, q8_0 or q4_0.
// exit 0 when the context was created, 1 when llama.cpp refused it, 2 on bad arguments.

#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void log_to_stderr(enum ggml_log_level level, const char * text, void * user_data) {
    (void) level;
    (void) user_data;
    fputs(text, stderr);
}

static int parse_type(const char * s, enum ggml_type * out) {
    if (strcmp(s, "f16") == 0) { *out = GGML_TYPE_F16;  return 1; }
    if (strcmp(s, "q8_0") == 0) { *out = GGML_TYPE_Q8_0; return 1; }
    if (strcmp(s, "q4_0") == 0) { *out = GGML_TYPE_Q4_0; return 1; }
    return 0;
}

int main(int argc, char ** argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s MODEL N_CTX TYPE_K TYPE_V FA N_UBATCH N_SEQ KV_UNIFIED\n", argv[0]);
        return 2;
    }
    enum ggml_type type_k;
    enum ggml_type type_v;
    if (!parse_type(argv[3], &type_k) || !parse_type(argv[4], &type_v)) {
        fprintf(stderr, "TYPE_K/TYPE_V: use f16, q8_0 or q4_0\n");
        return 2;
    }
    const int n_ctx = atoi(argv[2]);
    const int fa = atoi(argv[5]);
    const int n_ubatch = atoi(argv[6]);
    const int n_seq = atoi(argv[7]);
    const int unified = atoi(argv[8]);
    if (n_ctx <= 0 || n_ubatch <= 0 || n_seq <= 0) {
        fprintf(stderr, "N_CTX, N_UBATCH and N_SEQ must be positive\n");
        return 2;
    }

    llama_log_set(log_to_stderr, NULL);
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (model == NULL) {
        fprintf(stderr, "LOAD_CTX: model load failed\n");
        return 1;
    }

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) n_ctx;
    // llama-server's logical batch is 2048; the micro-batch never exceeds it.
    cp.n_batch = (uint32_t) (n_ubatch > 2048 ? n_ubatch : 2048);
    cp.n_ubatch = (uint32_t) n_ubatch;
    cp.n_seq_max = (uint32_t) n_seq;
    cp.kv_unified = unified != 0;
    cp.type_k = type_k;
    cp.type_v = type_v;
    cp.flash_attn_type = fa ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    // The C API defaults to a full-size sliding-window cache; llama-server (common_params)
    // does not (`--swa-full` turns it on): measure what the server allocates.
    cp.swa_full = false;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;

    struct llama_context * ctx = llama_init_from_model(model, cp);
    if (ctx == NULL) {
        fprintf(stderr, "LOAD_CTX: context creation failed\n");
        llama_model_free(model);
        return 1;
    }
    fprintf(stderr, "LOAD_CTX: ok n_ctx=%u n_ubatch=%u n_seq_max=%u\n", llama_n_ctx(ctx),
            llama_n_ubatch(ctx), llama_n_seq_max(ctx));
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
