"""Real HTTP servers on 127.0.0.1 for the tests: ``transformers serve`` and a fault-injecting proxy in front of it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiohttp import web


@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a loopback port in a thread; yields its URL, and stops the server after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A loopback URL whose port accepts connections and never answers (a firewall that drops, a hung proxy)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def transformers_cli() -> str:
    exe = Path(sys.executable).parent / "transformers"
    return str(exe) if exe.exists() else (shutil.which("transformers") or "transformers")


class Serve:
    """``transformers serve`` as a child process (own process group, so it can be killed hard)."""

    def __init__(self, model: Path | None = None, port: int | None = None, log: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.model = model
        self.extra = extra
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 180.0) -> Serve:
        cmd = [transformers_cli(), "serve"]
        if self.model is not None:
            cmd.append(str(self.model))
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu", "--log-level", "warning", *self.extra]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode} (log: {self.log})")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer /health within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, not a shutdown)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


#: Fault kinds the proxy injects: HTTP 429 with Retry-After, HTTP 500, a stall longer than the client's timeout,
#: a 200 with a truncated JSON body, and a connection closed without any answer.
FAULTS = ("429", "500", "stall", "malformed", "drop")


class FaultProxy:
    """A real aiohttp server that forwards chat completions to ``upstream`` and injects faults.

    ``choose(body_hash, attempt)`` returns a fault name from :data:`FAULTS` or None (forward). Everything seen is
    recorded: attempts per request body, forwarded bodies, fault counts, Authorization headers, arrival times.
    """

    def __init__(self, upstream: str, choose: Callable[[str, int, bytes], str | None], *, stall_s: float = 3.0,
                 retry_after: str = "1") -> None:
        self.upstream = upstream.rstrip("/")
        self.choose = choose
        self.stall_s = stall_s
        self.retry_after = retry_after
        self.port = free_port()
        self.attempts: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.auth: set[str] = set()
        self.times: dict[str, list[float]] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        import aiohttp

        raw = await request.read()
        key = hashlib.sha256(raw).hexdigest()
        attempt = self.attempts[key]
        self.attempts[key] += 1
        self.times.setdefault(key, []).append(time.monotonic())
        self.auth.add(request.headers.get("Authorization", ""))
        fault = self.choose(key, attempt, raw)
        if fault:
            self.faults[fault] += 1
        if fault == "429":
            return web.Response(status=429, text='{"error": "rate limited"}', headers={"Retry-After": self.retry_after})
        if fault == "500":
            return web.Response(status=500, text='{"error": "internal error"}')
        if fault == "stall":
            await asyncio.sleep(self.stall_s)
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        async with aiohttp.ClientSession() as session:
            async with session.post(self.upstream + "/chat/completions", data=raw,
                                    headers={"Content-Type": "application/json"}) as resp:
                body = await resp.read()
                status = resp.status
        self.forwarded[key] += 1
        if fault == "malformed":
            return web.Response(status=200, body=body[: len(body) // 2], content_type="application/json")
        return web.Response(status=status, body=body, content_type="application/json")

    def start(self) -> FaultProxy:
        self._thread.start()

        async def up() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(up(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
