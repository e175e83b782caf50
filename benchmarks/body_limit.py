"""Request-body limits against a real `finsync serve` process: a 300 MB body, streamed.

Sends generated bodies (never held in memory) over a raw socket while reading the answer,
and prints how long the 413 took, how much had been sent by then, and the server's peak RSS
(VmHWM from /proc, Linux). Cases: a chunked upload without a token (before the limits, it was
spooled to disk before the 401), a chunked JSON body to POST /users (before: the process grew
from 112 MB to 683 MB), and both again with a declared Content-Length (answered unread).

    .venv/bin/python benchmarks/body_limit.py [--server-src OLD/src]

``--server-src`` runs the server from another source tree (say ``git archive`` of an older
commit) for a before/after comparison; the database is migrated by this tree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import httpx

from _pg import fresh_database  # benchmarks/ is the script's directory

DB = "finsync_bench_hardening_body"
TOTAL = 300 * 1000 * 1000
CHUNK = b"x" * 65536
BOUNDARY = "benchboundary"


def rss_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of ``pid`` in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


PART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.ofx"\r\n'
    "Content-Type: application/x-ofx\r\n\r\n"
).encode()


async def post(port: int, path: str, content_type: str, *, declare: bool) -> tuple[str, float, int]:
    """Stream a TOTAL-byte body to ``path``; return the status line, seconds to it, and bytes sent by then.

    The body is complete and well formed (one multipart part for uploads), so a server that
    reads it all — the code before the limits, with ``--server-src`` — answers too."""
    multipart = content_type.startswith("multipart/")
    prefix = PART if multipart else b""
    suffix = f"\r\n--{BOUNDARY}--\r\n".encode() if multipart else b""
    size = len(prefix) + TOTAL + len(suffix)
    length = f"Content-Length: {size}" if declare else "Transfer-Encoding: chunked"
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\n{length}\r\n\r\n"

    def framed(data: bytes) -> bytes:
        return data if declare or not data else b"%x\r\n%s\r\n" % (len(data), data)

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0

    async def send_body() -> None:
        nonlocal sent
        try:
            writer.write(framed(prefix))
            sent += len(prefix)
            frame, remaining = framed(CHUNK), TOTAL
            while remaining:
                piece = CHUNK if remaining >= len(CHUNK) else CHUNK[:remaining]
                writer.write(frame if piece is CHUNK else framed(piece))
                await writer.drain()
                sent += len(piece)
                remaining -= len(piece)
            writer.write(framed(suffix) + (b"" if declare else b"0\r\n\r\n"))
            await writer.drain()
            sent += len(suffix)
        except ConnectionError:
            pass  # the server answered and closed: the rest is never sent

    started = time.perf_counter()
    writer.write(head.encode())
    sending = asyncio.create_task(send_body())
    status = await asyncio.wait_for(reader.readline(), timeout=600)
    elapsed = time.perf_counter() - started
    sending.cancel()
    writer.close()
    return status.decode().strip(), elapsed, sent


async def main(server_src: str | None) -> None:
    settings = await fresh_database(DB)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {
        "FINSYNC_DATABASE_URL": settings.database_url,
        "FINSYNC_ENCRYPTION_KEYS": settings.encryption_keys[0].get_secret_value(),
        "FINSYNC_JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
        "FINSYNC_LOG_LEVEL": "WARNING",
    }
    if server_src:
        env["PYTHONPATH"] = server_src
    cmd = [sys.executable, "-c", "from finsync.cli import app; app()", "serve", "--port", str(port)]
    server = await asyncio.create_subprocess_exec(*cmd, env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(200):
                try:
                    if (await http.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        base, _ = rss_kib(server.pid)
        print(f"server started: RSS {base / 1024:.0f} MiB; body sent: {TOTAL / 1e6:.0f} MB, generated\n")
        print(f"{'case':<46} {'answer':<40} {'time':>9} {'sent by then':>13} {'peak RSS':>9}")
        upload = f"multipart/form-data; boundary={BOUNDARY}"
        for name, path, ctype, declare in [
            ("upload, chunked, no token", "/api/v1/imports", upload, False),
            ("JSON to POST /users, chunked", "/api/v1/users", "application/json", False),
            ("upload, Content-Length declared, no token", "/api/v1/imports", upload, True),
            ("JSON to POST /users, Content-Length declared", "/api/v1/users", "application/json", True),
        ]:
            status, seconds, sent = await post(port, path, ctype, declare=declare)
            _, peak = rss_kib(server.pid)
            print(
                f"{name:<46} {status:<40} {seconds * 1000:>7.1f} ms {sent / 1e6:>10.1f} MB "
                f"{peak / 1024:>6.0f} MiB"
            )
        now, peak = rss_kib(server.pid)
        print(f"\nserver RSS now {now / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB", end="")
        print(f" (started at {base / 1024:.0f} MiB)")
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-src", help="serve from this source tree instead (before/after)")
    asyncio.run(main(parser.parse_args().server_src))
