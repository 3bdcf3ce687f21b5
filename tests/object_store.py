"""A real S3-compatible server on 127.0.0.1 for the tests: moto in server mode, as a process.

Started by the tests, bounded in time, and stopped (its process group killed) even when a
test fails. Stores reach it through ``storage_options`` (endpoint and test credentials),
exactly as a user's configuration would, or through the standard environment variables.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BUCKET = "lst-test"


@dataclass(frozen=True)
class S3Server:
    """A running moto server and how to reach it."""

    endpoint: str
    key: str = "testing-key"
    secret: str = "testing-secret-never-written"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {"key": self.key, "secret": self.secret,
                "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"}}

    @property
    def env(self) -> dict[str, str]:
        """The standard environment variables that point boto at the server."""
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, use_listings_cache=False)

    def url(self, name: str) -> str:
        return f"s3://{BUCKET}/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server(timeout_s: float = 30.0) -> Iterator[S3Server]:
    """Start ``python -m moto.server`` on a free local port, with the test bucket."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on port {port}") from None
                time.sleep(0.1)
        server = S3Server(endpoint=f"http://127.0.0.1:{port}")
        import boto3

        boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=server.key,
                     aws_secret_access_key=server.secret,
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class HTTPServer:
    """A local web server over a folder, with byte ranges, and the requests it served."""

    url: str
    requests: list[tuple[str, str, str | None]]  # (method, path, Range header)

    def served(self, suffix: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[1].endswith(suffix)]


@contextlib.contextmanager
def http_server(root: Any) -> Iterator[HTTPServer]:
    """Serve ``root`` on 127.0.0.1 in a thread: GET (one byte range or whole) and HEAD."""
    import http.server
    import threading
    from functools import partial

    log: list[tuple[str, str, str | None]] = []

    class RangeHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def send_head(self):  # type: ignore[override]
            log.append((self.command, self.path, self.headers.get("Range")))
            rng = self.headers.get("Range")
            path = self.translate_path(self.path)
            if rng is None or not os.path.isfile(path):
                return super().send_head()
            size = os.path.getsize(path)
            first, _, last = rng.removeprefix("bytes=").partition("-")
            start, stop = int(first), min(int(last) if last else size - 1, size - 1)
            fh = open(path, "rb")
            fh.seek(start)
            self.send_response(206)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
            self.send_header("Content-Length", str(stop - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self._remaining = stop - start + 1
            return fh

        def copyfile(self, source, outputfile):  # type: ignore[override]
            remaining = getattr(self, "_remaining", None)
            if remaining is None:
                return super().copyfile(source, outputfile)
            outputfile.write(source.read(remaining))
            self._remaining = None

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HTTPServer(f"http://127.0.0.1:{server.server_address[1]}", log)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
