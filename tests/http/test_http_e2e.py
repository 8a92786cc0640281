"""`inkling serve --http` as a subprocess with the real model, driven by real clients:
the `openai` package, and requests in llama.vim's and llama.vscode's exact shapes."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from lsp_server.bench.http_load import free_port
from lsp_server.http.keys import FILE_NAME, KeyStore

pytestmark = [pytest.mark.model, pytest.mark.slow]

FUNCTION = "def mean(values):\n    total = sum(values)\n"
BLOCK_PREFIX = "import os\n\n\ndef list_python_files(folder):\n    "


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A key in a keys file of this module's own (the server finds it through INKLING_STATE)."""
    state = tmp_path_factory.mktemp("state")
    return state, KeyStore(state / FILE_NAME).add("tester")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, key: tuple[Path, str]) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("http") / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            # Time budgets lifted: on a busy machine a budget would cut answers at different
            # tokens from one request to the next, and these tests compare answers.
            [
                sys.executable,
                "-m",
                "lsp_server",
                "serve",
                "--http",
                f"127.0.0.1:{port}",
                "--http-only",
                "--threads",
                "2",
                "--time-budget-inline-ms",
                "60000",
                "--time-budget-block-ms",
                "60000",
                # The same file again under a second name, and room for one model file only.
                "--http-model",
                f"second={os.environ['INKLING_MODEL']}",
                "--http-memory-mib",
                "400",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "INKLING_STATE": str(key[0])},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    saw_loading = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                assert json.load(response) == {"status": "ok"}
                return
        except urllib.error.HTTPError as error:
            assert error.code == 503 and error.headers["Retry-After"] == "1"
            saw_loading = True
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"not healthy in 120 s (saw 503 while loading: {saw_loading}):\n{log.read_text()}")


def post(url: str, path: str, body: Any, *, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}{path}", data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def api(server: str, key: tuple[Path, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=key[1], max_retries=0)


def test_the_openai_package_completes_plain_and_streamed(api: openai.OpenAI) -> None:
    client = api
    models = [model.id for model in client.models.list()]
    assert models[0].endswith("q4_k_m")  # the default model first
    plain = client.completions.create(
        model=models[0], prompt=FUNCTION + "    return ", suffix="\n", max_tokens=32, user="plain"
    )
    text = plain.choices[0].text
    assert text.strip() and "\n" not in text, text  # one line: the mode is tree-sitter's inline
    assert plain.usage is not None and plain.usage.completion_tokens > 0
    streamed = client.completions.create(
        model="inkling", prompt=FUNCTION + "    return ", suffix="\n", max_tokens=32, stream=True, user="s"
    )
    chunks = list(streamed)
    assert "".join(chunk.choices[0].text for chunk in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_n_gets_distinct_suggestions_the_first_as_n_1_gets_it(api: openai.OpenAI) -> None:
    prompt = "def centre(points):\n    n = len(points)\n    sx = sum(p.x for p in points)\n    sy = "
    # Different users: neither answer comes from the other's completion cache.
    several = api.completions.create(model="inkling", prompt=prompt, suffix="\n", n=3, user="n3")
    one = api.completions.create(model="inkling", prompt=prompt, suffix="\n", user="n1")
    texts = [choice.text for choice in several.choices]
    assert texts[0] == one.choices[0].text and texts[0].strip(), (texts, one.choices[0].text)
    assert 2 <= len(texts) <= 3 and len(set(texts)) == len(texts), texts
    assert [choice.index for choice in several.choices] == list(range(len(texts)))


def test_infill_in_llama_vims_shape(server: str) -> None:
    """The body llama.vim sends (its `llama#fim`), fields and all."""
    body = {
        "id_slot": 0,
        "input_prefix": "import os\n\n\ndef mean(values):\n",
        "input_suffix": "\n\nprint(mean([1, 2, 3]))\n",
        "input_extra": [
            {
                "text": "def median(values):\n    return sorted(values)[len(values) // 2]\n",
                "time": 1,
                "filename": "stats.py",
            }
        ],
        "prompt": "    return ",
        "n_predict": 128,
        "stop": [],
        "n_indent": 4,
        "top_k": 40,
        "top_p": 0.90,
        "samplers": ["top_k", "top_p", "infill"],
        "stream": False,
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 1000,
        "response_fields": [
            "content",
            "timings/prompt_n",
            "timings/prompt_ms",
            "timings/predicted_n",
            "timings/predicted_ms",
            "truncated",
            "tokens_cached",
        ],
    }
    status, answer = post(server, "/infill", body)
    assert status == 200, answer
    assert set(answer) == set(body["response_fields"])
    assert answer["content"].strip() and not answer["content"].startswith((" ", "\n")), answer
    assert answer["timings/prompt_n"] > 0 and answer["truncated"] is False


def test_infill_in_llama_vscodes_shape_with_its_cache_warm_up(server: str) -> None:
    """llama.vscode first sends `n_predict: 0` (evaluate only), then the request itself."""
    common = {
        "input_prefix": "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
        "input_suffix": "\n",
        "input_extra": [],
        "prompt": "        self.items.",
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
    }
    status, warm = post(server, "/infill", {**common, "n_predict": 0, "samplers": [], "t_max_predict_ms": 1})
    assert status == 200 and warm["content"] == "" and warm["stop_type"] == "none"
    status, answer = post(
        server,
        "/infill",
        {
            **common,
            "n_predict": 128,
            "top_k": 40,
            "top_p": 0.99,
            "stream": False,
            "n_indent": 8,
            "samplers": ["top_k", "top_p", "infill"],
            "t_max_predict_ms": 1000,
        },
    )
    assert status == 200 and answer["content"].startswith("append"), answer
    assert answer["tokens_cached"] > 0  # the warm-up put the prompt in the cache


def test_a_stop_string_cuts_the_answer(server: str) -> None:
    body = {"input_prefix": FUNCTION, "prompt": "    return ", "input_suffix": "\n", "stop": ["("]}
    status, free = post(server, "/infill", {**body, "stop": []})
    assert status == 200
    status, cut = post(server, "/infill", body)
    if "(" in free["content"]:
        assert cut["content"] == free["content"].split("(")[0] and cut["stop_type"] == "word"
    else:
        assert cut["content"] == free["content"]


def test_bad_requests_get_json_errors(server: str) -> None:
    status, answer = post(server, "/v1/completions", None, raw=b"{not json")
    assert status == 400 and "not valid JSON" in answer["error"]["message"]
    status, answer = post(server, "/v1/completions", {"model": "gpt-4", "prompt": "x"})
    assert status == 404 and answer["error"]["code"] == "model_not_found"
    status, answer = post(server, "/infill", {"input_prefix": 3})
    assert status == 400 and answer["error"]["param"] == "input_prefix"
    assert _status_of_oversized_body(server) == 413  # refused before the body is read
    status, answer = post(server, "/nowhere", {})
    assert status == 404 and answer["error"]["type"] == "not_found_error"
    with urllib.request.urlopen(f"{server}/health", timeout=5) as response:
        assert response.status == 200  # and the server is still up


def _status_of_oversized_body(url: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"POST /infill HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Content-Length: {9 * 1024 * 1024}\r\n\r\n{{".encode())
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def metric(url: str, name: str) -> float:
    """One sample's value from /metrics (0 when absent)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for(condition: Any, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_clients_newer_request_supersedes_its_older_one_only(server: str, api: openai.OpenAI) -> None:
    answers: dict[str, str] = {}

    def ask(name: str, user: str) -> None:
        answer = api.completions.create(
            model="inkling", prompt=BLOCK_PREFIX, suffix="\n", max_tokens=256, user=user
        )
        answers[name] = answer.choices[0].text

    for _ in range(3):  # the older request must still be running when the newer one comes
        answers.clear()
        older = threading.Thread(target=ask, args=("older", "alice"))
        older.start()
        assert wait_for(lambda t=older: metric(server, "inkling_requests_pending") >= 1 or not t.is_alive())
        newer = threading.Thread(target=ask, args=("newer", "alice"))
        other = threading.Thread(target=ask, args=("other", "bob"))
        newer.start()
        other.start()
        for thread in (older, newer, other):
            thread.join(120)
        if answers["older"] == "":
            break
    assert answers["older"] == "", answers  # superseded by alice's next request
    assert answers["newer"].strip() and answers["other"].strip(), answers  # bob's was not


def test_a_client_that_hangs_up_stops_its_request(server: str) -> None:
    cancelled = metric(server, "inkling_engine_cancelled_total")
    body = json.dumps({"model": "inkling", "prompt": BLOCK_PREFIX, "max_tokens": 512}).encode()
    connection = http.client.HTTPConnection(server.removeprefix("http://"), timeout=10)
    connection.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    assert wait_for(lambda: metric(server, "inkling_requests_pending") >= 1)  # it is being worked on
    connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    connection.close()
    disconnects = 'inkling_http_disconnects_total{endpoint="/v1/completions"}'
    assert wait_for(lambda: metric(server, disconnects) >= 1), "the hang-up was not noticed"
    # The engine stopped that generation (it would run for 512 tokens otherwise).
    assert wait_for(lambda: metric(server, "inkling_engine_cancelled_total") > cancelled)


def test_metrics_count_requests_and_tokens(server: str) -> None:
    post(server, "/infill", {"input_prefix": FUNCTION, "prompt": "    return ", "input_suffix": "\n"})
    with urllib.request.urlopen(f"{server}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        metrics = response.read().decode()
    assert re.search(r'inkling_http_requests_total\{code="200",endpoint="/infill",.*\} [1-9]', metrics)
    assert re.search(r"inkling_generated_tokens_total\{model=\".*\"\} [1-9]", metrics)
    assert 'inkling_http_request_seconds_bucket{endpoint="/infill",le="+Inf"}' in metrics


def test_keys_once_added_are_checked(server: str, key: tuple[Path, str]) -> None:
    """On loopback a key is optional; a wrong one is refused; a right one names the user."""
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="ink-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.completions.create(model="inkling", prompt="x = ", max_tokens=4)
    status, _ = post(server, "/infill", {"input_prefix": FUNCTION, "prompt": "    return ", "n_predict": 8})
    assert status == 200  # no key at all: a local client
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=key[1], max_retries=0)
    client.completions.create(model="inkling", prompt=FUNCTION + "    return ", max_tokens=8)
    with urllib.request.urlopen(f"{server}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert re.search(r'inkling_http_requests_total\{code="401",.*user="anonymous"\} [1-9]', metrics)
    assert re.search(r'inkling_completions_total\{model=".*",outcome="\w+",user="tester"\} [1-9]', metrics)


def test_ollamas_generate_plain_and_streamed(server: str) -> None:
    body = {
        "model": "inkling:latest",
        "prompt": "def area(width, height):\n    return ",  # asked nowhere else: not cached
        "suffix": "\n",
        "stream": False,
        "options": {"num_predict": 32, "temperature": 0},
    }
    status, plain = post(server, "/api/generate", body)
    assert status == 200 and plain["done"] is True and plain["response"].strip(), plain
    assert plain["eval_count"] > 0 and plain["total_duration"] > 0
    request = urllib.request.Request(
        f"{server}/api/generate", data=json.dumps({**body, "stream": True}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        lines = [json.loads(line) for line in response.read().decode().splitlines()]
    assert "".join(line["response"] for line in lines) == plain["response"]
    assert [line["done"] for line in lines][-1] is True and not any(line["done"] for line in lines[:-1])
    status, refused = post(server, "/api/generate", {**body, "model": "qwen2.5-coder:1.5b"})
    assert status == 404 and "not found" in refused["error"]["message"]  # Ollama's words
    with urllib.request.urlopen(f"{server}/api/tags", timeout=5) as response:
        assert json.load(response)["models"][0]["name"].endswith(":latest")


def test_events_are_counted_per_user(server: str, key: tuple[Path, str]) -> None:
    request = urllib.request.Request(
        f"{server}/v1/events",
        data=json.dumps({"type": "select", "completion_id": "cmpl-1", "choice_index": 0}).encode(),
        headers={"Authorization": f"Bearer {key[1]}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    status, refused = post(server, "/v1/events", {"type": "liked"})
    assert status == 400 and refused["error"]["param"] == "type"
    with urllib.request.urlopen(f"{server}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'inkling_http_events_total{type="select",user="tester"} 1.0' in metrics


def test_a_second_model_loads_when_asked_for_and_unloads_the_first(server: str) -> None:
    with urllib.request.urlopen(f"{server}/v1/models", timeout=5) as response:
        names = [model["id"] for model in json.load(response)["data"]]
    assert len(names) == 2 and names[1] == "second"
    body = {"model": "second", "prompt": FUNCTION + "    return ", "max_tokens": 8}
    status, answer = post(server, "/v1/completions", body)
    assert status == 503 and answer["error"]["message"] == "Loading model"  # its load began
    assert wait_for(lambda: post(server, "/v1/completions", body)[0] == 200, 120)
    status, answer = post(server, "/v1/completions", body)
    assert answer["model"] == "second"
    assert metric(server, 'inkling_model_loaded{model="second"}') == 1
    assert metric(server, f'inkling_model_loaded{{model="{names[0]}"}}') == 0  # 400 MiB hold one
    status, answer = post(server, "/v1/completions", {**body, "model": "third"})
    assert status == 404 and answer["error"]["code"] == "model_not_found"
