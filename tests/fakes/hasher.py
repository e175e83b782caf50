"""A fast stand-in for Argon2: same interface, records calls, threads and concurrency."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter


class FakeHasher:
    """Not a password hash (plain SHA-256): for tests only, so they need not spend 0.25 s per login.

    ``work_seconds`` simulates the hash's CPU time (in the calling thread); ``gate``, when given,
    holds every call until it is set, so a test can look at the server while hashes are running.
    """

    def __init__(self, work_seconds: float = 0.0, gate: threading.Event | None = None) -> None:
        self.work_seconds = work_seconds
        self.gate = gate
        self.calls: Counter[str] = Counter()
        self.threads: set[int] = set()
        self.entered = threading.Event()
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def _work(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1
            self.threads.add(threading.get_ident())
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        self.entered.set()
        try:
            if self.gate is not None:
                self.gate.wait(timeout=10)
            if self.work_seconds:
                time.sleep(self.work_seconds)
        finally:
            with self._lock:
                self.running -= 1

    def hash(self, password: str) -> str:
        self._work("hash")
        return "fake-sha256$" + hashlib.sha256(password.encode()).hexdigest()

    def verify(self, password: str, password_hash: str) -> bool:
        self._work("verify")
        return password_hash == "fake-sha256$" + hashlib.sha256(password.encode()).hexdigest()
