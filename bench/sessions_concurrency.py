#!/usr/bin/env python3
"""Concurrency benchmark for the session database (issue 15): PROCESSES `moat repl --session bench`
runs, TURNS lines each, all at once on one conversation, against a tiny stdlib OpenAI-compatible
server that streams a short reply after DELAY_MS. Prints turns stored / turns sent (user turns and
replies on the conversation's active path, and rows in the whole database, read with sqlite3) and
the wall time. A ratio other than 1.000 is a lost (or doubled) turn: the script exits 1.

    python3 bench/sessions_concurrency.py                      # 8 processes x 50 turns
    PROCESSES=4 TURNS=10 DELAY_MS=0 python3 bench/sessions_concurrency.py
    MOAT=path/to/moat python3 bench/sessions_concurrency.py    # default: target/release/moat

Standard library only; no model is loaded. Build first: cargo build --release.
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROCESSES = int(os.environ.get("PROCESSES", "8"))
TURNS = int(os.environ.get("TURNS", "50"))
DELAY_MS = int(os.environ.get("DELAY_MS", "20"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOAT = os.environ.get("MOAT", os.path.join(ROOT, "target", "release", "moat"))
REPLY = "noted"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self):
        if self.path.startswith("/v1/models"):
            body = {"object": "list", "data": [{"id": "fake", "object": "model", "max_model_len": 65536}]}
            self._send(200, "application/json", json.dumps(body).encode())
        else:
            self._send(404, "application/json", b'{"error":"not found"}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        time.sleep(DELAY_MS / 1000)
        chunk = {"choices": [{"index": 0, "delta": {"content": REPLY}, "finish_reason": "stop"}]}
        usage = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 1}}
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()
        self._send(200, "text/event-stream", body)


def main():
    if not os.access(MOAT, os.X_OK):
        sys.exit(f"no moat binary at {MOAT}: run `cargo build --release` or set MOAT=")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOAT_")}
        env.update(MOAT_CONFIG=os.path.join(tmp, "config.toml"), MOAT_DATA_DIR=os.path.join(tmp, "data"), NO_COLOR="1")
        sent = [f"turn {t} from process {p}" for p in range(PROCESSES) for t in range(TURNS)]
        start = time.monotonic()
        procs = []
        for p in range(PROCESSES):
            proc = subprocess.Popen(
                [MOAT, "--remote", url, "repl", "--session", "bench"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            )
            script = "".join(f"turn {t} from process {p}\n" for t in range(TURNS))
            procs.append((proc, script))
        # Written from threads so that no process waits on another's pipe.
        results = [None] * PROCESSES

        def feed(i, proc, script):
            _, err = proc.communicate(script.encode())
            results[i] = (proc.returncode, err.decode(errors="replace"))

        threads = [threading.Thread(target=feed, args=(i, p, s)) for i, (p, s) in enumerate(procs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        server.shutdown()

        failed = [(i, rc, err.strip().splitlines()[-1:] if err.strip() else []) for i, (rc, err) in enumerate(results) if rc != 0]
        db = sqlite3.connect(os.path.join(tmp, "data", "moat.db"))
        # The active path: the parent chain from the conversation's newest message.
        path = db.execute(
            """WITH RECURSIVE path(id, parent_id, role, content) AS (
                 SELECT id, parent_id, role, content FROM messages
                 WHERE id = (SELECT max(m.id) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                             WHERE c.name = 'bench')
                 UNION ALL
                 SELECT m.id, m.parent_id, m.role, m.content FROM messages m JOIN path p ON m.id = p.parent_id)
               SELECT role, content FROM path"""
        ).fetchall()
        rows = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        users = [c for r, c in path if r == "user"]
        replies = sum(1 for r, c in path if r == "assistant" and c == REPLY)
        distinct_sent = set(sent)
        stored_once = sum(1 for c in set(users) if c in distinct_sent and users.count(c) == 1)

    n = len(sent)
    print(f"{PROCESSES} processes x {TURNS} turns on one conversation, reply delay {DELAY_MS} ms")
    print(f"turns stored / turns sent: {stored_once}/{n} = {stored_once / n:.3f} (user turns on the active path, each once)")
    print(f"replies stored / sent:     {replies}/{n} = {replies / n:.3f}")
    print(f"rows in the database:      {rows} (expected {2 * n})")
    print(f"wall time: {wall:.2f} s ({n / wall:.1f} turns/s over all processes)")
    for i, rc, last in failed:
        print(f"process {i} exited {rc}: {last}", file=sys.stderr)
    ok = stored_once == n and len(users) == n and replies == n and rows == 2 * n and not failed
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
