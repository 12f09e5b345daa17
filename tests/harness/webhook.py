"""A real HTTP server that receives webhooks (alert notifications), for tests and benchmarks.

hook = WebhookReceiver()        # listening on 127.0.0.1, a free port; hook.url
hook.failing = True             # answer 503: the sender must retry later
hook.got                        # [(arrival ms, headers, raw body)] of every accepted POST
hook.close()
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    """See module docstring."""

    def __init__(self) -> None:
        self.got: list[tuple[int, dict[str, str], bytes]] = []
        self.attempts = 0
        self.failing = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                if outer.failing:
                    self.send_response(503)
                else:
                    outer.got.append((time.time_ns() // 1_000_000, dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        """The accepted bodies, parsed."""
        return [json.loads(body) for _t, _h, body in self.got]

    def states(self) -> list[str]:
        """The `state` of every accepted alert notification, in arrival order."""
        return [b["state"] for b in self.bodies()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
