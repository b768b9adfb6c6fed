"""The ``openai`` backend's logic against a scripted HTTP server: requests, retries, the cache,
and every failure a user can meet (the real llama.cpp server is in test_api_server.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perspectives.errors import BackendUnavailable, ConfigError, InputError
from perspectives.models.api import OpenAIChatModel, ResponseCache
from perspectives.models.spec import ApiSpec, ModelSpec, Sampling


class Script:
    """What the scripted server answers: a list of (status, body) used in turn (the last one
    repeats), and every request it saw."""

    def __init__(self, *replies):
        self.replies = list(replies) or [(200, completion("hello"))]
        self.seen: list[dict] = []
        self.auth: list[str | None] = []


def completion(text: str | None) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
    }


@pytest.fixture
def server():
    """``server(*replies)`` starts a scripted server; returns (url, script)."""
    servers = []

    def start(*replies):
        script = Script(*replies)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - the http.server API
                n = int(self.headers.get("content-length", 0))
                script.seen.append(json.loads(self.rfile.read(n)))
                script.auth.append(self.headers.get("authorization"))
                i = min(len(script.seen) - 1, len(script.replies) - 1)
                status, body = script.replies[i]
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - /v1/models, for the 404 hint
                data = json.dumps(
                    {
                        "object": "list",
                        "data": [
                            {"id": "smollm2", "object": "model", "created": 0, "owned_by": "x"}
                        ],
                    }
                ).encode()  # noqa: E501
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/v1", script

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def model(url, tmp_path, **api):
    return OpenAIChatModel(
        "m",
        system_prompt="Be brief.",
        api={"url": url, "max_retries": 0, "timeout": 10, **api},
        cache_path=tmp_path / "cache.sqlite",
    )


def test_answers_come_from_the_server_with_the_system_prompt_and_sampling(server, tmp_path):
    url, script = server((200, completion("  Paris.  ")))
    lm = model(url, tmp_path)
    out = lm.answer(["Capital of France?"], Sampling(temperature=0.5, top_p=0.8, max_new_tokens=7))
    assert out == [["Paris."]]
    sent = script.seen[0]
    assert sent["model"] == "m"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert sent["temperature"] == 0.5 and sent["top_p"] == 0.8 and sent["max_tokens"] == 7
    assert isinstance(sent["seed"], int)
    # Greedy: temperature 0, no seed; greedy replicates are asked once.
    lm.answer(["Another?"], replicates=3)
    assert script.seen[1]["temperature"] == 0.0 and "seed" not in script.seen[1]
    assert len(script.seen) == 2


def test_sampled_replicates_each_get_their_own_seed(server, tmp_path):
    url, script = server((200, completion("x")))
    out = model(url, tmp_path).answer(["Q?"], Sampling(), replicates=3, seed=5)
    assert len(out[0]) == 3
    assert len({r["seed"] for r in script.seen}) == 3


def test_the_cache_answers_a_repeated_call_without_the_server(server, tmp_path):
    url, script = server((200, completion("cached answer")))
    first = model(url, tmp_path).answer(["Q1?", "Q2?"])
    again = model(url, tmp_path)
    assert again.answer(["Q1?", "Q2?"]) == first and len(script.seen) == 2
    assert again.requests == 0
    # Another sampling is another answer; no cache, always asked.
    model(url, tmp_path).answer(["Q1?"], Sampling(max_new_tokens=5))
    model(url, tmp_path, cache=False).answer(["Q1?"])
    assert len(script.seen) == 4


def test_the_key_is_read_from_the_named_variable_and_never_shown(server, tmp_path, monkeypatch):
    url, script = server((401, {"error": {"message": "bad key"}}))
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    with pytest.raises(BackendUnavailable) as err:
        model(url, tmp_path, api_key_env="MY_KEY").answer(["Q?"])
    assert script.auth[0] == "Bearer sk-secret-123"
    text = str(err.value)
    assert "MY_KEY" in text and "401" in text and url in text and "sk-secret" not in text
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(BackendUnavailable, match="MY_KEY.*not set"):
        model(url, tmp_path, api_key_env="MY_KEY").answer(["Q?"])


def test_a_key_pasted_as_the_variable_name_is_refused_without_echoing_it():
    from perspectives.config import validate_model
    from perspectives.models.spec import CompareConfig

    raw = {
        "prompts": ["a?"],
        "models": [
            {
                "name": "x",
                "backend": "openai",
                "model": "m",
                "api": {"url": "http://h/v1", "api_key_env": "sk-abc 123"},
            },  # noqa: E501
            {"name": "y", "backend": "fake"},
        ],
    }
    with pytest.raises(ConfigError) as err:
        validate_model(CompareConfig, raw, "models.yaml")
    assert "api_key_env" in str(err.value) and "sk-abc" not in str(err.value)
    raw["models"][0]["api"] = {"url": "http://h/v1", "api_key": "sk-abc"}
    with pytest.raises(ConfigError) as err:
        validate_model(CompareConfig, raw, "models.yaml")
    assert "api_key" in str(err.value) and "sk-abc" not in str(err.value)


@pytest.mark.parametrize(
    "url, message",
    [
        # each passed the check and failed at the first request, after the run had begun
        ("http://:abc/v1", "malformed host or port"),
        ("http://h:99999/v1", "malformed host or port"),
        ("http://[::1/v1", "malformed host or port"),
        # each was saved with the run and shown in errors, the key with it
        ("http://user:sk-abc@h/v1", "must not hold a user or password"),
        ("http://h/v1?api_key=sk-abc", "must not hold a key in its query"),
    ],
)
def test_a_url_that_cannot_be_asked_or_holds_a_key_is_refused_without_echoing_it(url, message):
    from perspectives.config import validate_model
    from perspectives.models.spec import CompareConfig

    raw = {
        "prompts": ["a?"],
        "models": [
            {"name": "x", "backend": "openai", "model": "m", "api": {"url": url}},
            {"name": "y", "backend": "fake"},
        ],
    }
    with pytest.raises(ConfigError, match=message) as err:
        validate_model(CompareConfig, raw, "models.yaml")
    assert "models.0.api.url" in str(err.value) and "abc" not in str(err.value)
    raw["models"][0]["api"] = url  # the URL where the mapping should be: not echoed either
    with pytest.raises(ConfigError) as err:
        validate_model(CompareConfig, raw, "models.yaml")
    assert "models.0.api" in str(err.value) and "abc" not in str(err.value)
    assert ApiSpec(url="http://[::1]:8080/v1?max_tokens=5").url.endswith("?max_tokens=5")


def test_a_server_that_is_down_is_one_line_naming_the_url(tmp_path):
    from api_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendUnavailable) as err:
        model(url, tmp_path, max_retries=1).answer(["Q?"])
    text = str(err.value)
    assert url in text and "unreachable after 1 retries" in text and "\n" not in text


def test_server_errors_are_retried_then_reported(server, tmp_path):
    url, script = server((503, {"error": "busy"}), (200, completion("fine")))
    assert model(url, tmp_path, max_retries=2).answer(["Q?"]) == [["fine"]]
    assert len(script.seen) == 2
    url, script = server((500, {"error": {"message": "boom"}}))
    with pytest.raises(BackendUnavailable, match="HTTP 500: boom"):
        model(url, tmp_path, max_retries=1).answer(["Q?"])
    assert len(script.seen) == 2


def test_unknown_model_lists_what_the_server_serves(server, tmp_path):
    url, _ = server((404, {"error": {"message": "model not found"}}))
    served = r"no model 'm' \(HTTP 404\); it serves \['smollm2'\]"
    with pytest.raises(BackendUnavailable, match=served):
        model(url, tmp_path).answer(["Q?"])


def test_context_overflow_and_other_4xx_are_named(server, tmp_path):
    url, _ = server((400, {"error": {"message": "the request exceeds the available context size"}}))
    with pytest.raises(InputError, match="does not fit the server's context"):
        model(url, tmp_path).answer(["Q?"])
    url, _ = server((422, {"error": {"message": "bad field"}}))
    with pytest.raises(BackendUnavailable, match="HTTP 422: bad field"):
        model(url, tmp_path).answer(["Q?"])


def test_malformed_and_empty_responses(server, tmp_path):
    url, _ = server((200, "this is not json"))
    with pytest.raises(BackendUnavailable, match="not a chat completion"):
        model(url, tmp_path).answer(["Q?"])
    url, _ = server((200, {"choices": []}))
    with pytest.raises(BackendUnavailable, match="no message"):
        model(url, tmp_path).answer(["Q?"])
    url, _ = server((200, completion(None)))
    with pytest.warns(UserWarning, match="1 of 1 completions were empty"):
        assert model(url, tmp_path).answer(["Q?"]) == [[""]]


def test_concurrency_keeps_the_order_of_prompts(server, tmp_path):
    url, script = server((200, completion("same")))
    prompts = [f"Question {i}?" for i in range(12)]
    done = []
    out = model(url, tmp_path, concurrency=4).answer(prompts, on_batch=done.append)
    assert len(out) == 12 and sum(done) == 12
    assert sorted(r["messages"][-1]["content"] for r in script.seen) == sorted(prompts)


def test_api_settings_are_checked():
    with pytest.raises(ValueError, match="http"):
        ApiSpec(url="localhost:8080")
    with pytest.raises(ValueError, match="needs 'api'"):
        ModelSpec(name="x", backend="openai", model="m")
    with pytest.raises(ValueError, match="applies to the openai backend"):
        ModelSpec(name="x", backend="fake", api={"url": "http://h/v1"})
    with pytest.raises(ValueError):
        ApiSpec(url="http://h/v1", concurrency=0)
    with pytest.raises(InputError, match="chat messages only"):
        OpenAIChatModel("m", prompt_format="plain", api={"url": "http://h/v1"})


def test_a_damaged_cache_is_bypassed_with_a_warning(server, tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"garbage" * 100)
    url, script = server((200, completion("ok")))
    with pytest.warns(UserWarning, match="unusable"):
        assert model(url, tmp_path).answer(["Q?"]) == [["ok"]]
    assert ResponseCache(bad).get([b"k"]) == {}
