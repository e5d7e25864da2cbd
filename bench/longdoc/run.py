#!/usr/bin/env python3
"""Long documents through the prompt library (issue 16): exit code, evidence, planted fact, and wall
time against the time the model itself needs.

    python3 bench/longdoc/run.py [--moat target/release/moat] [--docs en,zh] [--ids market/swot,...]

For each document (bench/longdoc/make_docs.py writes them) and each prompt, `moat run --as trace`
runs on the default model and this script checks:
  * exit 0 and a result (moat validated every JSON reply against its schema);
  * every cited evidence id is one of the run's sources (ids moat assigned);
  * the fact planted in the document's last chunk is in the reduced facts (the first step's input);
and compares the wall time with the limit: the document's tokens at the model's prompt speed plus
the run's generated tokens at its generation speed, both measured by `moat bench` in the same run
(before the runs; the figures after are printed too, to show how steady the machine was). The
prompt speed is given at 512 tokens (llama-bench's pp512) and at 1,024 (what a default chunk is).
Check that the machine is idle first (the script prints `uptime`).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

VARS = {
    "market/swot": ["-v", "subject=ClaimPilot"],
    "market/risk-register": ["-v", "subject=ClaimPilot"],
    "scripts/ai-startup-feasibility": ["-v", "company=ClaimPilot"],
}


def speed(moat, env):
    """Prompt speed at 512 tokens (llama-bench's pp512) and at 1,024 (the default chunk size: a chunk is
    read at positions up to about 1,300, where attention costs more), and generation speed."""
    runs = {}
    for p in (512, 1024):
        out = subprocess.run(
            [moat, "bench", "--json", "-r", "3", "-p", str(p)], capture_output=True, text=True, env=env, check=True
        )
        runs[p] = json.loads(out.stdout)["results"][0]
    return runs[512]["pp_tok_s"], runs[1024]["pp_tok_s"], (runs[512]["gen_tok_s"] + runs[1024]["gen_tok_s"]) / 2


def check(trace, keyword):
    ids = {s["id"] for s in trace.get("sources", [])}
    cited = [c for s in trace["steps"] for c in s.get("cited", [])]
    bad = [c for c in cited if c not in ids]
    first = next((s for s in trace["steps"] if not s["skipped"]), None)
    planted = first is not None and keyword in first["user"]
    return ids, cited, bad, planted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moat", default=os.path.join(ROOT, "target/release/moat"))
    ap.add_argument("--docs", default="en,zh")
    ap.add_argument("--ids", default=",".join(VARS))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "make_docs.py"), args.out], check=True, capture_output=True)
    planted = json.load(open(os.path.join(HERE, "planted.json"), encoding="utf-8"))
    env = dict(os.environ, NO_COLOR="1")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    pp, pp1k, tg = speed(args.moat, env)
    print(f"model speed before (moat bench, medians of 3): pp512 {pp:.0f} tok/s, pp1024 {pp1k:.0f} tok/s, generation {tg:.1f} tok/s", flush=True)
    rows = []
    for doc in args.docs.split(","):
        path = os.path.join(args.out, f"{doc}.md")
        keyword = planted[doc]["keyword"]
        for pid in args.ids.split(","):
            cmd = [args.moat, "run", pid, *VARS[pid], "--lang", doc, "--as", "trace", "--input", path]
            t0 = time.monotonic()
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.monotonic() - t0
            row = {"doc": doc, "id": pid, "rc": p.returncode, "wall_s": round(wall, 1)}
            if p.returncode != 0:
                row["error"] = p.stderr.strip().splitlines()[-1:] or ["?"]
                rows.append(row)
                print(json.dumps(row, ensure_ascii=False), flush=True)
                continue
            trace = json.loads(p.stdout)
            with open(os.path.join(args.out, f"{doc}-{pid.replace('/', '_')}.trace.json"), "w", encoding="utf-8") as f:
                f.write(p.stdout)
            ids, cited, bad, found = check(trace, keyword)
            tokens = trace["tokens"]
            limit = tokens["document"] / pp + tokens["generated"] / tg
            limit1k = tokens["document"] / pp1k + tokens["generated"] / tg
            long = trace.get("long_input") or {}
            row.update(
                {
                    "chars": long.get("doc_chars"),
                    "doc_tokens": tokens["document"],
                    "generated_tokens": tokens["generated"],
                    "chunks": len(long.get("chunks", [])),
                    "facts": long.get("facts_extracted"),
                    "merged": long.get("facts_merged"),
                    "rounds": len(long.get("rounds", [])),
                    "map_s": round(long.get("map_ms", 0) / 1000, 1),
                    "reduce_s": round(long.get("reduce_ms", 0) / 1000, 1),
                    "sources": len(ids),
                    "cited": len(set(cited)),
                    "invented": bad,
                    "planted_in_reduced_facts": found,
                    "limit_pp512_s": round(limit, 1),
                    "ratio_pp512": round(wall / limit, 2),
                    "limit_pp1024_s": round(limit1k, 1),
                    "ratio_pp1024": round(wall / limit1k, 2),
                }
            )
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    after = speed(args.moat, env)
    print(f"model speed after: pp512 {after[0]:.0f} tok/s, pp1024 {after[1]:.0f} tok/s, generation {after[2]:.1f} tok/s")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"before": [pp, pp1k, tg], "after": after, "rows": rows}, f, ensure_ascii=False, indent=1)
    failed = [r for r in rows if r["rc"] != 0 or r.get("invented")]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
