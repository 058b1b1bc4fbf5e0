"""A webhook receiver for apprise's ``json://`` POSTs, run inside the test container as a unit
of its own with the container's python3 (standard library only).

Usage: python3 receiver.py PORT OUT_FILE DELAY_FILE

Binds 127.0.0.1:PORT. Every POST becomes one JSON line in OUT_FILE: when it arrived and was
answered (wall clock, which the host shares), the path, the Authorization header and the body.
Its arrival is also written at once (before any delay) to OUT_FILE with the suffix
".arrivals", so a test can tell that a POST is in flight.
It answers 200 after the number of seconds in DELAY_FILE (if that file exists), which makes it
slow on demand.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOCK = threading.Lock()


def main() -> None:
    port, out, delay_file = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    arrivals = out.with_suffix(".arrivals")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.time()
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with LOCK, arrivals.open("a", encoding="utf-8") as f:
                f.write(f"{arrived} {self.path}\n")  # in flight from now on
            try:
                delay = float(delay_file.read_text())
            except (OSError, ValueError):
                delay = 0.0
            time.sleep(delay)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"raw": raw.decode("utf-8", "replace")}
            record = {
                "arrived": arrived,
                "answered": time.time(),
                "path": self.path,
                "authorization": self.headers.get("Authorization", ""),
                "body": body,
            }
            with LOCK, out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"receiver listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
