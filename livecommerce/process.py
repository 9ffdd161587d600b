"""Start a real ``livecommerce serve`` in a child process: for tests, benchmarks and load tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from livecommerce.embedded_redis import die_with_parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``with ServerProcess() as server:`` a server on a free port, stopped (SIGINT) on exit."""

    def __init__(
        self,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="lc-server-")
        self.data_dir = data_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = port or free_port()
        self.workers = workers
        self.extra_env = env or {}
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        token = self.extra_env.get("LIVECOMMERCE_ADMIN_TOKEN")
        return token or (self.data_dir / "admin_token").read_text().strip()

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "LIVECOMMERCE_DATA_DIR": str(self.data_dir),
            "LIVECOMMERCE_PORT": str(self.port),
            "LIVECOMMERCE_HOST": "127.0.0.1",
            "LIVECOMMERCE_WORKERS": str(self.workers),
            **self.extra_env,
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "livecommerce", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # a killed test run leaves no server behind
        )
        log.close()
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server never became healthy:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 30.0) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.stop(signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
