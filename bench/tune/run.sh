#!/usr/bin/env bash
# Issue 17's figures for measured settings: the default model at depth 0 and 512, in ROUNDS rounds of
#   moat tuned            `moat tune` (fresh data dir), then `moat bench -d D` with every setting auto
#   llama-bench defaults  llama.cpp's own defaults (flash attention auto, its thread count, batch 2048/512)
#   llama-bench best      the fastest row of a grid over -fa 0,1 × -t T × -ub 256,512, per test
# tokens/s for pp512 and tg128 at each depth, and the ratios tuned/defaults and tuned/best.
# Goal: tuned ≥ 1.3× defaults at depth 512 (tg) and ≥ 0.97× best.
#
# llama-bench is built from the llama.cpp tree moat links (llama-cpp-sys-2's vendored copy, same
# ggml kernels and build flags: GGML_NATIVE, no AMX). That crate ships the tree without the tools'
# sources: with LLAMA_BENCH_CPP=path/to/tools/llama-bench/llama-bench.cpp (a llama.cpp checkout of the
# same version) the real llama-bench is built; without it, llama_bench_lite.cpp here (the same
# measurement — warm-up, untimed depth fill, pp in n_batch chunks, tg one token at a time — against the
# same libllama). LLAMA_BENCH=path uses a binary built elsewhere. The build goes to /tmp, once.
#
# Environment: MODEL (default: the default model in the store), MOAT (target/release/moat),
# REPS (1 per round), ROUNDS (5), JOBS (2, for the llama-bench build), OUT (/tmp/moat-tune-bench).
# Run it on an idle machine: the numbers are only as steady as the CPU is free.
set -euo pipefail
cd "$(dirname "$0")/../.."

MODEL=${MODEL:-$HOME/.local/share/moat/models/SmolLM2-135M-Instruct.Q4_1.gguf}
MOAT=${MOAT:-target/release/moat}
REPS=${REPS:-1}
ROUNDS=${ROUNDS:-5}
JOBS=${JOBS:-2}
OUT=${OUT:-/tmp/moat-tune-bench}
BUILD=${LLAMA_BENCH_BUILD:-/tmp/llama-bench-build}
LLAMA_BENCH=${LLAMA_BENCH:-$BUILD/bin/llama-bench}
mkdir -p "$OUT"

[ -f "$MODEL" ] || { echo "no model at $MODEL (moat models pull smollm2-135m, or set MODEL)" >&2; exit 2; }
[ -x "$MOAT" ] || { echo "no moat binary at $MOAT (cargo build --release, or set MOAT)" >&2; exit 2; }

if [ ! -x "$LLAMA_BENCH" ]; then
    version=$(grep -A1 '^name = "llama-cpp-sys-2"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
    vendored=$(ls -d "$HOME"/.cargo/registry/src/*/llama-cpp-sys-2-"$version"/llama.cpp 2>/dev/null | head -1)
    [ -n "$vendored" ] || { echo "llama-cpp-sys-2 $version's sources are not in ~/.cargo/registry (cargo fetch)" >&2; exit 2; }
    src=$BUILD-src
    rm -rf "$src" && mkdir -p "$src" && cp -r "$vendored"/. "$src"/
    if [ -f "${LLAMA_BENCH_CPP:-}" ]; then
        cp "$LLAMA_BENCH_CPP" "$src/tools/llama-bench/llama-bench.cpp"
        link="common llama"
    else
        echo "(no LLAMA_BENCH_CPP: building bench/tune/llama_bench_lite.cpp as llama-bench)" >&2
        cp bench/tune/llama_bench_lite.cpp "$src/tools/llama-bench/llama-bench.cpp"
        link="llama"
    fi
    # Only llama-bench among the tools (the others' sources are not shipped either).
    cat >"$src/tools/CMakeLists.txt" <<'EOF'
find_package(Threads REQUIRED)
llama_add_compile_flags()
add_subdirectory(llama-bench)
EOF
    cat >"$src/tools/llama-bench/CMakeLists.txt" <<EOF
set(TARGET llama-bench)
add_executable(\${TARGET} llama-bench.cpp)
target_link_libraries(\${TARGET} PRIVATE $link \${CMAKE_THREAD_LIBS_INIT})
target_compile_features(\${TARGET} PRIVATE cxx_std_17)
EOF
    # The flags moat's build uses (.cargo/config.toml): native, AMX off.
    CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" CXXFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
        cmake -S "$src" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
        -DBUILD_SHARED_LIBS=OFF >"$OUT/cmake.log"
    cmake --build "$BUILD" --target llama-bench -j"$JOBS" >"$OUT/build.log"
fi

physical=$(lscpu -p=core 2>/dev/null | grep -v '^#' | sort -u | wc -l || nproc)
logical=$(nproc)
threads=$(printf '%s\n' "$physical" "$((physical > 1 ? physical - 1 : 1))" "$logical" | sort -un | paste -sd, -)

echo "load before: $(uptime)"
data=$OUT/data
rm -rf "$data" "$OUT"/*.r*.json "$OUT"/*.r*.jsonl
# moat with its built-in defaults only: no user config file, no MOAT_MODEL_* overrides.
export MOAT_CONFIG=$OUT/no-config.toml
unset MOAT_MODEL_THREADS MOAT_MODEL_THREADS_BATCH MOAT_MODEL_BATCH MOAT_MODEL_FLASH_ATTN
# The machine's speed drifts by tens of percent over minutes (shared hosts), so the comparison is made in
# short rounds: a grid over the flags first (once) finds llama-bench's best flags per test; then each round
# runs moat (with the choice of a fresh `moat tune`), llama-bench at llama.cpp's defaults and llama-bench at
# the best flags, one repetition each, in an order that alternates between rounds. The summary quotes
# medians of the rounds and of each round's own ratios.
"$LLAMA_BENCH" -m "$MODEL" -p 512 -n 128 -d 0,512 -r "$REPS" -fa 0,1 -t "$threads" -ub 256,512 -o json \
    >"$OUT/llama-grid.json" 2>"$OUT/llama-grid.err"
best_flags() { # test depth -> llama-bench flags of the grid's fastest row
    python3 - "$OUT/llama-grid.json" "$1" "$2" <<'EOF'
import json, sys
rows, test, d = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
key, other = ("n_prompt", "n_gen") if test == "pp" else ("n_gen", "n_prompt")
r = max((r for r in rows if r["n_depth"] == d and r[key] > 0 and r[other] == 0), key=lambda r: r["avg_ts"])
n = "-p 512 -n 0" if test == "pp" else "-p 0 -n 128"
print(f"{n} -d {d} -fa {int(r['flash_attn'])} -t {r['n_threads']} -ub {r['n_ubatch']}")
EOF
}
for r in $(seq 1 "$ROUNDS"); do
    start=$(date +%s%N)
    MOAT_DATA_DIR=$data "$MOAT" tune -m "$MODEL" --force --json >"$OUT/tune.r$r.json"
    echo "{\"wall_ms\": $((($(date +%s%N) - start) / 1000000))}" >"$OUT/tunewall.r$r.json"
    run_moat() {
        for d in 0 512; do
            MOAT_DATA_DIR=$data "$MOAT" bench -m "$MODEL" -p 512 -g 128 -d "$d" -r "$REPS" --json >"$OUT/moat-d$d.r$r.json"
        done
    }
    run_llama() {
        # llama-bench's default thread count is the physical cores (the lite build is told so).
        "$LLAMA_BENCH" -m "$MODEL" -p 512 -n 128 -d 0,512 -r "$REPS" -t "$physical" -o json \
            >"$OUT/llama-default.r$r.json" 2>"$OUT/llama-default.err"
        : >"$OUT/llama-best.r$r.jsonl"
        for test in pp tg; do
            for d in 0 512; do
                # shellcheck disable=SC2046
                "$LLAMA_BENCH" -m "$MODEL" $(best_flags "$test" "$d") -r "$REPS" -o json >>"$OUT/llama-best.r$r.jsonl" \
                    2>"$OUT/llama-best.err"
            done
        done
    }
    if [ $((r % 2)) -eq 1 ]; then run_moat; run_llama; else run_llama; run_moat; fi
done
echo "load after:  $(uptime)"

python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
med = statistics.median
load = lambda name, r: json.load(open(f"{out}/{name}.r{r}.json"))
for r in range(1, rounds + 1):
    t = load("tune", r)["entry"]
    c = t["choice"]
    print(f"round {r}: moat tune {load('tunewall', r)['wall_ms'] / 1000:.1f} s wall ({t['took_ms'] / 1000:.1f} s measuring, "
          f"{len(t['trials'])} trials); chose flash attention {c['flash_attn']}, {c['threads']} threads, "
          f"{c['threads_batch']} prompt threads, batch {c['batch']}")
def rate(rows, test, d, best=False):
    key = "n_prompt" if test == "pp" else "n_gen"
    hits = [r for r in rows if r["n_depth"] == d and r[key] > 0 and r["n_prompt" if test == "tg" else "n_gen"] == 0]
    if not hits:
        return None, None
    r = max(hits, key=lambda r: r["avg_ts"]) if best else hits[0]
    return r["avg_ts"], f"fa={r['flash_attn']} t={r['n_threads']} ub={r['n_ubatch']}"
print(f"medians of {rounds} rounds (ratios: median of each round's own ratio, min-max after it)")
print(f"{'test':<12} {'moat tuned':>11} {'llama dflt':>11} {'llama best':>11} {'tuned/dflt':>17} {'tuned/best':>17}  best flags per round")
for d in (0, 512):
    for test in ("pp", "tg"):
        mine, dflt, best, flags = [], [], [], []
        for r in range(1, rounds + 1):
            m = load(f"moat-d{d}", r)["results"][0]
            mine.append(m["pp_tok_s"] if test == "pp" else m["gen_tok_s"])
            dflt.append(rate(load("llama-default", r), test, d)[0] or 0.0)
            rows = []
            for chunk in open(f"{out}/llama-best.r{r}.jsonl").read().replace("]\n[", "]\x00[").split("\x00"):
                if chunk.strip():
                    rows.extend(json.loads(chunk))
            b, f = rate(rows, test, d, best=True)
            best.append(b or 0.0)
            flags.append(f or "-")
        def ratios(theirs):
            rs = [a / b for a, b in zip(mine, theirs) if b]
            return f"{med(rs):.2f}x ({min(rs):.2f}-{max(rs):.2f})" if rs else "-"
        name = f"{test}{512 if test == 'pp' else 128} @d{d}"
        print(f"{name:<12} {med(mine):>11.1f} {med(dflt):>11.1f} {med(best):>11.1f} {ratios(dflt):>17} {ratios(best):>17}  {'; '.join(flags)}")
print("(moat's tg is its wall-clock rate: sampling and detokenising included; llama-bench's excludes them)")
EOF
