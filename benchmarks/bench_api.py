"""Benchmark the ``openai`` backend against the server's own throughput.

A real llama.cpp server (llama-cpp-python, serving the bundled SmolLM2 GGUF on 127.0.0.1) is
started here. The baseline is the server's own throughput: the same chat-completion requests
sent by a bare HTTP loop (``requests``, one connection per thread, no retries, no cache) at the
same concurrency. Then ``OpenAIChatModel`` (the official ``openai`` client, bounded
concurrency, cache off) answers the same prompts at concurrency 1, 2, 4 and 8. The client's
overhead is its time over the bare loop's at the same concurrency (target: at most 10%).
Rounds alternate between the two so a busy machine affects both alike.

Writes ``benchmarks/results/api.json``. Keep the machine otherwise idle. Run with the project
venv (with the dev extra, which brings llama-cpp-python[server])::

    python benchmarks/bench_api.py [--prompts 16] [--tokens 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "api.json"
sys.path.insert(0, str(ROOT / "tests"))


def say(msg: str) -> None:
    print(msg, flush=True)


def prompts(n: int) -> list[str]:
    from perspectives.data.banks import load_bank

    return load_bank("neutral")["question"].head(n).tolist()


def bare(url: str, questions: list[str], tokens: int, concurrency: int) -> float:
    """Seconds for a bare HTTP loop to get every answer."""

    def one(q: str) -> str:
        with requests.Session() as s:
            r = s.post(
                f"{url}/chat/completions",
                json={
                    "model": "smollm2",
                    "messages": [{"role": "user", "content": q}],
                    "max_tokens": tokens,
                    "temperature": 0.0,
                },
                timeout=300,
            )
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"]

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, questions))
    return time.perf_counter() - start


def client(url: str, questions: list[str], tokens: int, concurrency: int) -> float:
    from perspectives.models.api import OpenAIChatModel
    from perspectives.models.spec import Sampling

    lm = OpenAIChatModel("smollm2", api={"url": url, "concurrency": concurrency, "cache": False})
    start = time.perf_counter()
    lm.answer(questions, Sampling(do_sample=False, max_new_tokens=tokens))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="server threads")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    from api_server import LlamaServer

    questions = prompts(args.prompts)
    server = LlamaServer(Path(tempfile.mkdtemp()), threads=args.threads).start()
    rows = []
    try:
        # Warm the server, and the client's imports and connection, before anything is timed.
        bare(server.url, questions[:2], args.tokens, 1)
        client(server.url, questions[:1], args.tokens, 1)
        for c in (1, 2, 4, 8):
            b, o = [], []
            for _ in range(args.rounds):
                b.append(bare(server.url, questions, args.tokens, c))
                o.append(client(server.url, questions, args.tokens, c))
            row = {
                "concurrency": c,
                "bare_s": round(statistics.median(b), 3),
                "client_s": round(statistics.median(o), 3),
                "bare_answers_per_s": round(len(questions) / statistics.median(b), 3),
                "client_answers_per_s": round(len(questions) / statistics.median(o), 3),
            }
            row["client_overhead"] = round(row["client_s"] / row["bare_s"] - 1, 4)
            rows.append(row)
            say(
                f"concurrency {c}: server alone {row['bare_answers_per_s']:.2f} answers/s, "
                f"through the client {row['client_answers_per_s']:.2f} "
                f"(overhead {100 * row['client_overhead']:+.1f}%)"
            )
    finally:
        server.stop()
    result = {
        "machine": {
            "python": platform.python_version(),
            "cores": os.cpu_count(),
            "server_threads": args.threads,
            "loadavg": list(os.getloadavg()),
        },
        "prompts": len(questions),
        "max_tokens": args.tokens,
        "rounds": args.rounds,
        "rows": rows,
        "max_client_overhead": max(r["client_overhead"] for r in rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
