"""What the loopback fakes of remote APIs share (fake Kubernetes, Prometheus, KFP API
servers): a quiet request handler that answers JSON, and a server on a free port."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["JsonHandler", "serve"]


class JsonHandler(BaseHTTPRequestHandler):
    """A handler that logs nothing and answers with :meth:`_send` / :meth:`_send_bytes`."""

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send_bytes(self, code: int, data: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send(self, code: int, body: Any) -> None:
        self._send_bytes(code, json.dumps(body).encode(), "application/json")


def serve(handler_cls: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``handler_cls`` on a free loopback port in a daemon thread: (server, base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
