"""A real OpenAI-compatible server for the tests: llama-cpp-python's, serving the bundled GGUF.

``LlamaServer`` starts ``python -m llama_cpp.server`` (on a CPU with AMX, without weight
repacking) on a free port of 127.0.0.1, waits until ``/v1/models`` answers, and stops (or
kills) it on demand. Where llama-cpp-python is not installed the tests that need it skip,
except with PERSPECTIVES_REQUIRE_SERVER=1 (CI), where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

MODEL_ALIAS = "smollm2"

# ``python -m llama_cpp.server`` with llama.cpp's extra weight buffers (repacking) turned off,
# as llama-cli's --no-repack does; the server has no option for it. On CPUs with AMX (Xeon
# Sapphire Rapids and later) llama.cpp repacks the weights for AMX, and the first answer then
# dies in a general protection fault inside libggml-cpu (ggml-org/llama.cpp#20824): every
# server test failed with "the server is unreachable". Elsewhere the server runs as it is.
LAUNCH_WITHOUT_REPACKING = """
import runpy
import llama_cpp.llama_cpp as lib

default_params = lib.llama_model_default_params

def without_repacking():
    params = default_params()
    params.use_extra_bufts = False
    return params

lib.llama_model_default_params = without_repacking
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_llama_cpp() -> None:
    """Skip (or, in CI, fail) when llama-cpp-python's server cannot be started."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        message = "llama-cpp-python[server] is not installed"
        if os.environ.get("PERSPECTIVES_REQUIRE_SERVER") == "1":
            pytest.fail(f"{message} (PERSPECTIVES_REQUIRE_SERVER=1)")
        pytest.skip(message)


class LlamaServer:
    """One llama.cpp server process serving the bundled model as ``smollm2``."""

    def __init__(self, log_dir: Path, port: int | None = None, threads: int = 1) -> None:
        from perspectives.bundled import bundled_gguf

        self.gguf = bundled_gguf()
        self.port = port or free_port()
        self.threads = threads
        self.log = log_dir / f"llama-server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def launcher() -> list[str]:
        """How to start the server module: as it is, or without repacking on an AMX CPU."""
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            flags = ""
        if " amx_int8" in flags or " amx_tile" in flags:
            return ["-c", LAUNCH_WITHOUT_REPACKING]
        return ["-m", "llama_cpp.server"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> LlamaServer:
        cmd = [
            sys.executable,
            *self.launcher(),
            "--model",
            str(self.gguf),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            "2048",
            # One thread by default: the tests' own process needs the other core.
            "--n_threads",
            str(self.threads),
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
