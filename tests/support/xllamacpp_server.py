"""Serve a GGUF with llama.cpp's own HTTP server (the `xllamacpp` wheel), for moat's remote tests.

    python xllamacpp_server.py MODEL.gguf [--n-ctx N] [--threads N] [--api-key KEY]

Listens on 127.0.0.1 on a free port and prints `LISTEN http://127.0.0.1:PORT` once it serves.
Runs until stdin closes or it is killed, so a test that dies takes its server with it.
"""

import argparse
import sys

import xllamacpp as xlc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--api-key", default="")
    args = ap.parse_args()

    p = xlc.CommonParams()
    p.model.path = args.model
    p.hostnames = ["127.0.0.1"]
    p.port = 0
    p.n_ctx = args.n_ctx
    p.n_parallel = 1
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    if args.api_key:
        p.api_keys = [args.api_key]
    server = xlc.Server(p)
    print("LISTEN", server.listening_address, flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
