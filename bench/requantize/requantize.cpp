// Re-quantises a GGUF with llama.cpp's own API, linked against the llama.cpp that cargo built for moat.
// Build: OUT=$(ls -d target/release/build/llama-cpp-sys-2-*/out | head -1)
//   g++ -O1 -std=c++17 bench/requantize/requantize.cpp -I$OUT/include -L$OUT/lib -lllama -lggml -lggml-cpu \
//       -lggml-base -fopenmp -lpthread -ldl -lm -o /tmp/requantize
// Use:   /tmp/requantize IN.gguf OUT.gguf FTYPE   (llama.h: 2 = Q4_0, 15 = Q4_K_M)
#include "llama.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: q IN OUT FTYPE(int)\n"); return 2; }
    llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = (llama_ftype)atoi(argv[3]);
    p.allow_requantize = true;
    p.nthread = 2;
    uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
    fprintf(stderr, "rc=%u\n", rc);
    return rc;
}
