"""Embedders: the bundled surrogate offline, the disk cache, an OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from perspectives.errors import InputError
from perspectives.space.embed import CachedEmbedder, OpenAIEmbedder, get_embedder

TEXTS = ["The future looks bright.", "Everything will go wrong.", "Water boils at 100 C."]


def test_bundled_embedder_loads_offline_in_a_fresh_process(tmp_path):
    code = (
        "from perspectives.space.embed import SentenceTransformerEmbedder as E;"
        "v = E('bundled').embed(['hello world', 'good night']);"
        "import numpy as np; print(v.shape[0], v.shape[1], round(float(np.linalg.norm(v[0])), 4))"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "empty-hf-home"),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert out.stdout.split() == ["2", "384", "1.0"]  # all-MiniLM-L6-v2 normalizes


def test_similar_texts_are_closer(bundled_embedder):
    v = bundled_embedder.embed(
        [
            "I love sunny days.",
            "Sunny days make me happy.",
            "The integral of x is x squared over two.",
        ]
    )
    assert np.linalg.norm(v[0] - v[1]) < np.linalg.norm(v[0] - v[2])


class Counting:
    """An embedder that counts the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.calls = inner, inner.name, 0

    def embed(self, texts):
        self.calls += len(texts)
        return self.inner.embed(texts)


def test_cache_never_re_embeds(tmp_path, bundled_embedder):
    counting = Counting(bundled_embedder)
    cache = CachedEmbedder(counting, tmp_path / "cache.sqlite")
    first = cache.embed(TEXTS + TEXTS[:1])
    assert counting.calls == 3  # duplicates embedded once
    again = CachedEmbedder(counting, tmp_path / "cache.sqlite").embed(list(reversed(TEXTS)))
    assert counting.calls == 3
    np.testing.assert_array_equal(again, first[:3][::-1])
    np.testing.assert_allclose(first[0], bundled_embedder.embed(TEXTS[:1])[0], atol=1e-6)


def test_cache_is_keyed_by_embedder(tmp_path, bundled_embedder):
    a = Counting(bundled_embedder)
    b = Counting(bundled_embedder)
    b.name = "another-embedder"
    CachedEmbedder(a, tmp_path / "c.sqlite").embed(TEXTS)
    CachedEmbedder(b, tmp_path / "c.sqlite").embed(TEXTS)
    assert (a.calls, b.calls) == (3, 3)


@pytest.fixture()
def embedding_server(bundled_embedder):
    """A real OpenAI-compatible /v1/embeddings server on loopback, backed by the bundled model."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/embeddings" or body.get("model") != "minilm":
                self.send_response(404)
                self.end_headers()
                self.wfile.write(b'{"error": "unknown model"}')
                return
            vectors = bundled_embedder.embed(body["input"])
            data = [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in reversed(list(enumerate(vectors)))
            ]  # out of order on purpose
            payload = json.dumps({"object": "list", "data": data, "model": "minilm"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_endpoint(embedding_server, bundled_embedder):
    remote = OpenAIEmbedder(embedding_server, "minilm", batch_size=2)
    np.testing.assert_allclose(remote.embed(TEXTS), bundled_embedder.embed(TEXTS), atol=1e-6)
    via_factory = get_embedder("minilm", url=embedding_server, cache=False)
    assert via_factory.embed(TEXTS[:1]).shape == (1, 384)


def test_endpoint_errors_are_clear(embedding_server):
    with pytest.raises(InputError, match=r"/v1/embeddings: embedding endpoint answered HTTP 404"):
        OpenAIEmbedder(embedding_server, "nope").embed(TEXTS)
    with pytest.raises(InputError, match="unreachable"):
        OpenAIEmbedder("http://127.0.0.1:9", "minilm", timeout=2).embed(TEXTS)
