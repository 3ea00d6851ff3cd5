"""Serves the built console (`web/dist`) and its runtime configuration, as Firebase Hosting does.

`python scripts/console.py --port 3000 --dist web/dist --config .stack/console-config.json`:
`/config.json` is the configuration file, a file of the build is served as it is (its hashed
assets cached for good), and any other path gets `index.html`, so the console's own paths
(`/customers/…`, `/settings/integrations?google=…`) load it. scripts/stack.py starts this.
"""

from __future__ import annotations

import argparse
import contextlib
import mimetypes
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
}


def handler_for(dist: Path, config: Path) -> type[BaseHTTPRequestHandler]:
    root = dist.resolve()

    class ConsoleHandler(BaseHTTPRequestHandler):
        server_version = "cscx-console"
        protocol_version = "HTTP/1.1"  # keep-alive: every answer has its Content-Length

        def do_GET(self) -> None:
            self._serve(with_body=True)

        def do_HEAD(self) -> None:
            self._serve(with_body=False)

        def _serve(self, *, with_body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            if path == "/config.json":
                self._send(config.read_bytes(), "application/json", "no-store", with_body)
                return
            file = (root / path.lstrip("/")).resolve()
            if file.is_relative_to(root) and file.is_file():
                immutable = file.parent == root / "assets"
                cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
                self._send(file.read_bytes(), _type_of(file), cache, with_body)
            elif Path(path).suffix and path != "/":
                # A missing file (an old asset, a typo) is a 404, not the app's page.
                self._send(b"Not found\n", "text/plain; charset=utf-8", "no-store", with_body, HTTPStatus.NOT_FOUND)
            else:
                self._send((root / "index.html").read_bytes(), TYPES[".html"], "no-cache", with_body)

        def _send(
            self, body: bytes, content_type: str, cache: str, with_body: bool, status: HTTPStatus = HTTPStatus.OK
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"console: {self.address_string()} {format % args}\n")

    return ConsoleHandler


def _type_of(file: Path) -> str:
    return TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--dist", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    if not (args.dist / "index.html").is_file():
        print(f"console: no build at {args.dist} (cd web && npm ci && npm run build)", file=sys.stderr)
        return 1
    server = ThreadingHTTPServer((args.host, args.port), handler_for(args.dist, args.config))
    server.daemon_threads = True
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
