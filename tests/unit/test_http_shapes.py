"""The HTTP front door's conversions and rules, without a server or a model."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from lsp_server.context import Mode
from lsp_server.generator import CancelToken
from lsp_server.http.errors import HttpError
from lsp_server.http.front import Front, _cut_at_stop, _language_id, context_files
from lsp_server.http.infill import ask_from_infill, pick_fields
from lsp_server.http.openai import ask_from_openai, choices_wanted, completion_response, texts
from lsp_server.pipeline import Completion, Status
from lsp_server.scheduler import Scheduler
from lsp_server.settings import Settings
from lsp_server.templates import ContextFile


def test_infill_puts_the_cursor_after_the_prompt_field() -> None:
    ask = ask_from_infill(
        {"input_prefix": "def f():\n", "prompt": "    return ", "input_suffix": "\n", "n_predict": 0}, "vim"
    )
    assert (ask.prefix, ask.suffix, ask.max_tokens, ask.client) == ("def f():\n    return ", "\n", 0, "vim")
    assert ask_from_infill({"input_prefix": "x", "n_predict": -1}, "vim").max_tokens is None  # -1: no limit


def test_input_extra_takes_both_shapes_and_refuses_others() -> None:
    files = context_files([{"filename": "a.py", "text": "x = 1\n", "time": 3}, "loose chunk"])
    assert files == (ContextFile("a.py", "x = 1\n"), ContextFile("", "loose chunk"))
    with pytest.raises(HttpError) as refused:
        context_files([{"filename": "a.py", "text": 3}])
    assert refused.value.status == 400 and refused.value.param == "input_extra"


def test_without_a_file_name_the_language_is_that_of_the_clients_other_files() -> None:
    extra = (ContextFile("a.go", ""), ContextFile("b.go", ""), ContextFile("c.py", ""), ContextFile("", ""))
    assert _language_id("", extra) == "go"
    assert _language_id("main.rs", extra) == "rust"
    assert _language_id("", None) == "plaintext"


def test_response_fields_pick_and_unnest_as_llama_cpp_does() -> None:
    response = {"content": "x", "timings": {"prompt_n": 3, "prompt_ms": 1.5}, "model": "m"}
    picked = pick_fields(response, ["content", "timings/prompt_n", "missing", "timings/nope"])
    assert picked == {"content": "x", "timings/prompt_n": 3}
    assert pick_fields(response, None) is response


def test_the_earliest_stop_string_cuts() -> None:
    completion = Completion("a(b); c(d)", 0, Mode.INLINE, "", Status.OFFERED)
    answer = _cut_at_stop(completion, [";", "("])
    assert (answer.text, answer.stopping_word) == ("a", "(")
    assert _cut_at_stop(completion, ["zz", ""]).text == "a(b); c(d)"


def test_openai_n_offers_distinct_alternatives_and_no_more() -> None:
    completion = Completion("x = 1", 0, Mode.INLINE, "", Status.OFFERED, alternatives=("y = 2", "z = 3"))
    assert texts(_cut_at_stop(completion, []), 2) == ["x = 1", "y = 2"]
    assert texts(_cut_at_stop(completion, []), 8) == ["x = 1", "y = 2", "z = 3"]  # never more than there are
    response = completion_response(_cut_at_stop(completion, []), 1, "m")
    assert [c["text"] for c in response["choices"]] == ["x = 1"] and response["object"] == "text_completion"


def test_alternatives_are_cut_at_the_stop_strings_and_stay_distinct() -> None:
    completion = Completion(
        "f(a); g()", 0, Mode.INLINE, "", Status.OFFERED, alternatives=("f(a); h()", "k()")
    )
    answer = _cut_at_stop(completion, [";"])
    assert (answer.text, answer.alternatives) == ("f(a)", ("f(a)", "k()"))
    assert texts(answer, 3) == ["f(a)", "k()"]  # the first alternative became the answer's text


def test_openai_n_above_one_is_an_explicit_request_for_that_many() -> None:
    ask = ask_from_openai({"prompt": "x = ", "n": 3}, "127.0.0.1", choices_wanted({"n": 3}))
    assert ask.choices == 3
    settings = Front._settings(ask, Settings(inline_suggestions=2))
    assert settings.inline_suggestions == 3
    one = ask_from_openai({"prompt": "x = "}, "127.0.0.1")
    assert one.choices == 1 and Front._settings(one, Settings()) == Settings()


def test_openai_user_names_the_client() -> None:
    assert ask_from_openai({"prompt": "x", "user": "ana"}, "127.0.0.1").client == "127.0.0.1/ana"
    assert ask_from_openai({"prompt": ["x"]}, "127.0.0.1").prefix == "x"
    with pytest.raises(HttpError):
        ask_from_openai({"prompt": ["x", "y"]}, "127.0.0.1")
    with pytest.raises(HttpError):
        ask_from_openai({"prompt": "x", "max_tokens": 0}, "127.0.0.1")


def test_a_clients_request_supersedes_only_its_own_earlier_one() -> None:
    scheduler = Scheduler()
    release = threading.Event()

    def job(name: str) -> Callable[[CancelToken], str]:
        def run(cancel: CancelToken) -> str:
            release.wait(5)
            return name

        return run

    first, _ = scheduler.submit(job("alice-1"), "alice")
    bob, bobs = scheduler.submit(job("bob"), "bob")
    second, _ = scheduler.submit(job("alice-2"), "alice")
    assert first.cancelled and not bob.cancelled and not second.cancelled
    assert scheduler.pending == 3
    release.set()
    assert bobs.result(5) == "bob"
    scheduler.cancel_all("shutdown")
    scheduler.close()
