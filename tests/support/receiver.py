"""A real HTTP receiver for webhooks: a threaded ``http.server`` on a free port that
records each POSTed JSON body and answers the statuses it is told, in turn."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str
    #: the statuses to answer, in turn (the last one for ever after); 200 by default
    statuses: list[int] = field(default_factory=lambda: [200])
    #: every body received, with the status it was answered
    received: list[tuple[int, Any]] = field(default_factory=list)

    def delivered(self) -> list[Any]:
        """The bodies answered with a 2xx."""
        return [body for status, body in self.received if 200 <= status < 300]


@contextmanager
def receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got = box[0]
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            status = got.statuses[min(len(got.received), len(got.statuses) - 1)]
            got.received.append((status, body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook",
                        statuses or [200]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
