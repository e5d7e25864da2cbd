// A stand-in for llama.cpp's llama-bench when its sources are not at hand (the llama.cpp tree that
// llama-cpp-sys-2 vendors ships without tools/llama-bench/llama-bench.cpp). It links the same
// libllama moat links and measures the way llama-bench does:
//   one context per combination (n_ctx = depth + prompt + gen, n_threads = n_threads_batch = -t),
//   a warm-up (one batch, one token), then per repetition: clear the cache, fill `depth` tokens
//   untimed, time `pp` random tokens decoded in n_batch chunks, or `tg` tokens decoded one at a
//   time; tokens/s averaged over the repetitions.
// Output: a JSON array of rows with llama-bench's field names (n_prompt, n_gen, n_depth, n_batch,
// n_ubatch, n_threads, flash_attn, avg_ts, stddev_ts).
//
// usage: llama-bench-lite -m MODEL [-p 512] [-n 128] [-d 0,512] [-r 3] [-t N,...] [-fa auto,on,off]
//                         [-b 2048,...] [-ub 512,...]

#include "llama.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

static std::vector<std::string> split(const std::string & s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}

static std::vector<int> ints(const std::string & s) {
    std::vector<int> out;
    for (const auto & x : split(s)) {
        out.push_back(std::atoi(x.c_str()));
    }
    return out;
}

static llama_flash_attn_type fa_type(const std::string & s) {
    if (s == "on" || s == "1") {
        return LLAMA_FLASH_ATTN_TYPE_ENABLED;
    }
    if (s == "off" || s == "0") {
        return LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    return LLAMA_FLASH_ATTN_TYPE_AUTO;
}

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Decodes `n` random tokens (BOS first when `bos`) from position `pos` in chunks of `n_batch`.
static bool decode_random(llama_context * ctx, const llama_vocab * vocab, std::mt19937 & rng, int n, int n_batch, bool bos) {
    const int n_vocab = llama_vocab_n_tokens(vocab);
    std::vector<llama_token> tokens(n_batch);
    int done = 0;
    while (done < n) {
        const int k = std::min(n_batch, n - done);
        for (int i = 0; i < k; i++) {
            tokens[i] = (int) (rng() % n_vocab);
        }
        if (bos && done == 0) {
            tokens[0] = llama_vocab_bos(vocab);
        }
        if (llama_decode(ctx, llama_batch_get_one(tokens.data(), k)) != 0) {
            return false;
        }
        done += k;
    }
    llama_synchronize(ctx);
    return true;
}

static bool decode_one_by_one(llama_context * ctx, const llama_vocab * vocab, std::mt19937 & rng, int n) {
    const int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token t = (int) (rng() % n_vocab);
    for (int i = 0; i < n; i++) {
        if (llama_decode(ctx, llama_batch_get_one(&t, 1)) != 0) {
            return false;
        }
        llama_synchronize(ctx);
        t = (int) (rng() % n_vocab);
    }
    return true;
}

static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    std::string model_path;
    int n_prompt = 512, n_gen = 128, reps = 3;
    std::vector<int> depths = { 0 }, batches = { 2048 }, ubatches = { 512 };
    unsigned hw = std::thread::hardware_concurrency();
    std::vector<int> threads = { (int) (hw > 0 ? hw : 1) };
    std::vector<std::string> fas = { "auto" };
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i], v = argv[i + 1];
        if (a == "-m") model_path = v;
        else if (a == "-p") n_prompt = std::atoi(v.c_str());
        else if (a == "-n") n_gen = std::atoi(v.c_str());
        else if (a == "-r") reps = std::max(1, std::atoi(v.c_str()));
        else if (a == "-d") depths = ints(v);
        else if (a == "-t") threads = ints(v);
        else if (a == "-b") batches = ints(v);
        else if (a == "-ub") ubatches = ints(v);
        else if (a == "-fa") fas = split(v);
        else if (a == "-o") { /* JSON is the only output */ }
        else {
            fprintf(stderr, "unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (model_path.empty()) {
        fprintf(stderr, "usage: %s -m MODEL [-p N] [-n N] [-d D,...] [-r N] [-t N,...] [-fa auto,on,off] [-b N,...] [-ub N,...]\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", model_path.c_str());
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::mt19937 rng(42);
    bool first = true;
    printf("[\n");
    for (const auto & fa : fas)
    for (int t : threads)
    for (int b : batches)
    for (int ub : ubatches)
    for (int d : depths)
    for (int test = 0; test < 2; test++) {
        const int pp = test == 0 ? n_prompt : 0;
        const int tg = test == 1 ? n_gen : 0;
        if (pp == 0 && tg == 0) continue;
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx = d + n_prompt + n_gen + 1;
        cp.n_batch = b;
        cp.n_ubatch = std::min(ub, b);
        cp.n_threads = t;
        cp.n_threads_batch = t;
        cp.flash_attn_type = fa_type(fa);
        cp.no_perf = true;
        llama_context * ctx = llama_init_from_model(model, cp);
        if (!ctx) {
            fprintf(stderr, "context refused (fa=%s t=%d b=%d ub=%d)\n", fa.c_str(), t, b, ub);
            continue;
        }
        llama_memory_t mem = llama_get_memory(ctx);
        // Warm-up, untimed.
        if (pp > 0) decode_random(ctx, vocab, rng, std::min(b, pp), b, true);
        if (tg > 0) decode_one_by_one(ctx, vocab, rng, 1);
        std::vector<double> samples;
        bool ok = true;
        for (int r = 0; r < reps && ok; r++) {
            llama_memory_clear(mem, false);
            if (d > 0) ok = decode_random(ctx, vocab, rng, d, b, true);
            double t0 = now_s();
            if (pp > 0) ok = ok && decode_random(ctx, vocab, rng, pp, b, d == 0);
            if (tg > 0) ok = ok && decode_one_by_one(ctx, vocab, rng, tg);
            samples.push_back((pp + tg) / (now_s() - t0));
        }
        llama_free(ctx);
        if (!ok) {
            fprintf(stderr, "decode failed (fa=%s t=%d b=%d ub=%d d=%d)\n", fa.c_str(), t, b, ub, d);
            continue;
        }
        double mean = 0, sq = 0;
        for (double s : samples) mean += s;
        mean /= samples.size();
        for (double s : samples) sq += (s - mean) * (s - mean);
        double sd = samples.size() > 1 ? std::sqrt(sq / (samples.size() - 1)) : 0.0;
        printf("%s  {\"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, \"n_batch\": %d, \"n_ubatch\": %d, "
               "\"n_threads\": %d, \"flash_attn\": \"%s\", \"avg_ts\": %.3f, \"stddev_ts\": %.3f}",
               first ? "" : ",\n", pp, tg, d, b, cp.n_ubatch, t, fa.c_str(), mean, sd);
        first = false;
        fflush(stdout);
    }
    printf("\n]\n");
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
