"""Remote generators (`engineUrl`) against a scripted server: the decoding rule kept, slots
pinned, cancellation and failures turned into clear errors, never a hang."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence

import pytest

from lsp_server.generator import CancelToken, GenerationRequest
from lsp_server.remote import detect
from lsp_server.remote.client import EngineClient, EngineError
from lsp_server.remote.generators import (
    LLAMA_CPP,
    OPENAI,
    LlamaServerGenerator,
    OpenAIGenerator,
    prompt_as_text,
)
from lsp_server.remote.vocab import ServerVocabulary
from tests.unit.fake_engine import Script, fake_engine

EOS = 2
MARKER = 3  # a control token, written out as "<|fim_middle|>" in text prompts


class CharVocab:
    """One token per character (id = code point); 1 is BOS, 2 end of generation."""

    n_ctx = 2048
    add_bos = True
    bos_id = 1
    lora = None

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        return ([1] if add_bos else []) + [ord(c) for c in text]

    def token_piece(self, token: int) -> str:
        return "" if token < 4 else chr(token)

    def piece(self, token: int) -> bytes:
        return self.token_piece(token).encode()

    def token_text(self, token: int) -> str:
        return "<|fim_middle|>" if token == MARKER else self.token_piece(token)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(self.token_piece(t) for t in tokens)

    def is_eog(self, token: int) -> bool:
        return token == EOS

    def is_control(self, token: int) -> bool:
        return token == MARKER

    def special_token_id(self, text: str) -> int | None:
        return None

    def fim_token_ids(self) -> dict[str, int]:
        return {}

    def metadata(self, key: str) -> str | None:
        return None

    architecture = "test"


def ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def script_of(text: str, **kwargs: object) -> Script:
    tokens = ids(text)
    return Script(tokens=[*tokens, EOS], pieces={t: chr(t) for t in tokens}, **kwargs)  # type: ignore[arg-type]


def llama(url: str, timeout: float = 5.0) -> LlamaServerGenerator:
    client, info = detect(url)
    client.read_timeout_s = timeout
    return LlamaServerGenerator(client, CharVocab(), info, "test")


def request(**kwargs: object) -> GenerationRequest:
    values: dict[str, object] = {"prompt": [1, *ids("x = ")], "max_tokens": 40}
    values.update(kwargs)
    return GenerationRequest(**values)  # type: ignore[arg-type]


def test_detects_llama_cpp_and_openai_servers() -> None:
    with fake_engine(Script(n_ctx=1234, slots=3)) as server:
        _, info = detect(server.url)
        assert (info.kind, info.n_ctx, info.slots, info.model_path) == (
            LLAMA_CPP,
            1234,
            3,
            "/models/fake.gguf",
        )
        _, openai = detect(server.url + "/v1")
        assert (openai.kind, openai.model, openai.n_ctx) == (OPENAI, "fake-model", 1234)
    with fake_engine(Script(openai_only=True)) as server:
        _, info = detect(server.url)
        assert info.kind == OPENAI and info.url.endswith("/v1")


def test_greedy_stream_with_the_stop_rule_and_a_pinned_slot() -> None:
    with fake_engine(script_of("1 + 2\nprint(x)\n")) as server:
        generator = llama(server.url)
        stop = lambda text: text.index("\n") if "\n" in text else None  # noqa: E731
        first = generator.generate(request(stop=stop), CancelToken())
        assert (first.text, first.finish_reason) == ("1 + 2", "stop")
        assert first.generated_tokens == 6  # the line break was generated, then cut
        second = generator.generate(request(), CancelToken())
        assert (second.text, second.finish_reason) == ("1 + 2\nprint(x)\n", "eos")
        bodies = server.bodies("/completion")
        assert [b["id_slot"] for b in bodies] == [-1, 1]  # the server's choice, then kept
        assert all(b["cache_prompt"] and b["stream"] and b["prompt"] == [1, *ids("x = ")] for b in bodies)
        assert "n_probs" not in bodies[0]  # nothing to decide: no log-probabilities asked
        assert generator.primed and generator.stats.requests == 2
        prompt = [1, *ids("x = ")]
        assert generator.uncached(prompt) == 0  # the slot holds it (and what was generated)
        assert generator.uncached([1, *ids("y = 2")]) == 5


def test_a_fresh_slot_is_cold() -> None:
    with fake_engine(script_of("abc")) as server:
        assert llama(server.url).uncached([1, 2, 3]) == 3


def test_max_tokens_and_the_context_size_bound_the_request() -> None:
    with fake_engine(script_of("abcdef")) as server:
        generator = llama(server.url)
        generation = generator.generate(request(max_tokens=3), CancelToken())
        assert (generation.text, generation.finish_reason) == ("abc", "length")
        assert server.bodies("/completion")[0]["n_predict"] == 3
        with pytest.raises(Exception, match="context holds"):
            generator.generate(request(prompt=[1] * 5000), CancelToken())


def test_healing_takes_the_rules_token_from_the_top_ones_and_restarts() -> None:
    # The prompt lost "pri"; the server's greedy first token is "x" (disagrees), "p" agrees.
    script = script_of("xyz", top={0: [(ord("x"), -0.1), (ord("p"), -1.0)]})
    with fake_engine(script) as server:
        generator = llama(server.url)
        server.script.tokens = [ord("x"), EOS]
        generation = generator.generate(request(forced_prefix="p", max_tokens=5), CancelToken())
        bodies = server.bodies("/completion")
        assert bodies[0]["n_probs"] > 0
        assert bodies[1]["prompt"][-1] == ord("p")  # the rule's pick, appended
        assert generation.text.startswith("p")


def test_only_the_decided_tokens_carry_probabilities() -> None:
    """llama-server sorts the whole vocabulary for every token it gives probabilities for: the
    request that decides stops after its token, and the rest comes without them."""
    script = script_of("print(x)", top={0: [(ord("p"), -0.1), (ord("x"), -1.0)]})
    with fake_engine(script) as server:
        generation = llama(server.url).generate(request(forced_prefix="p", max_tokens=20), CancelToken())
        assert (generation.text, generation.finish_reason) == ("print(x)", "eos")
        first, second = server.bodies("/completion")
        assert first["n_probs"] > 0 and first["n_predict"] == 1
        assert "n_probs" not in second and second["prompt"][-1] == ord("p")
        assert second["n_predict"] == 19


def test_forced_tokens_are_appended_to_the_prompt() -> None:
    with fake_engine(script_of("return 1")) as server:
        generator = llama(server.url)
        generation = generator.generate(request(forced_prefix="    ", forced_as_written=True), CancelToken())
        body = server.bodies("/completion")[0]
        assert body["prompt"][-4:] == ids("    ") and "n_probs" not in body
        assert generation.text == "    return 1"


def test_a_line_may_not_start_with_a_line_break() -> None:
    script = script_of("\nfoo", top={0: [(ord("\n"), -0.1), (EOS, -0.5), (ord("b"), -2.0)]})
    with fake_engine(script) as server:
        generator = llama(server.url)
        generator.generate(request(start_on_line=True, max_tokens=4), CancelToken())
        bodies = server.bodies("/completion")
        assert bodies[0]["n_probs"] > 0
        assert bodies[1]["prompt"][-1] == ord("b")  # neither the line break nor the end


def test_stop_token_ids_and_control_tokens_end_the_completion() -> None:
    script = Script(tokens=[ord("a"), MARKER, ord("b"), EOS], pieces={ord("a"): "a", ord("b"): "b"})
    with fake_engine(script) as server:
        generation = llama(server.url).generate(request(), CancelToken())
        assert (generation.text, generation.finish_reason) == ("a", "eos")


def test_cancelling_closes_the_request_at_once() -> None:
    with fake_engine(script_of("a" * 50, delay_s=0.05)) as server:
        generator = llama(server.url)
        cancel = CancelToken()
        threading.Timer(0.2, cancel.cancel).start()
        started = time.perf_counter()
        generation = generator.generate(request(max_tokens=50), cancel)
        assert generation.finish_reason == "cancelled"
        assert time.perf_counter() - started < 1.5
        time.sleep(0.2)
        assert server.disconnects >= 1  # the server saw the connection go


def test_cancelling_while_the_server_evaluates_the_prompt() -> None:
    with fake_engine(script_of("abc", hang_s=3.0)) as server:
        generator = llama(server.url)
        cancel = CancelToken()
        threading.Timer(0.2, lambda: cancel.cancel("superseded", finish_batch=True)).start()
        started = time.perf_counter()
        assert generator.generate(request(), cancel).finish_reason == "cancelled"
        assert time.perf_counter() - started < 1.5


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failures_are_engine_errors_with_a_reason() -> None:
    with pytest.raises(EngineError, match="refused the connection"):
        detect(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(EngineError, match="not an http"):
        detect("gpu-box:8080")
    with (
        fake_engine(script_of("abc", status=503)) as server,
        pytest.raises(EngineError, match="HTTP 503: the fake is unwell"),
    ):
        llama(server.url).generate(request(), CancelToken())
    with fake_engine(script_of("abc", hang_s=2.0)) as server:
        started = time.perf_counter()
        with pytest.raises(EngineError, match="did not answer in time"):
            llama(server.url, timeout=0.3).generate(request(), CancelToken())
        assert time.perf_counter() - started < 1.5
    with (
        fake_engine(script_of("abcdef", close_after=2)) as server,
        pytest.raises(EngineError, match=r"closed the connection|without saying why"),
    ):
        llama(server.url).generate(request(), CancelToken())


def test_ranking_is_greedy_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    with fake_engine(script_of("abc")) as server, caplog.at_level(logging.WARNING):
        generator = llama(server.url)
        for _ in range(2):
            assert generator.generate(request(candidates=3), CancelToken()).text == "abc"
    assert sum("decoded greedily" in r.getMessage() for r in caplog.records) == 1


def test_alternatives_are_not_asked_for_the_first_comes_alone_and_it_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fake_engine(script_of("abc")) as server, caplog.at_level(logging.WARNING):
        generator = llama(server.url)
        for _ in range(2):
            generation = generator.generate(request(alternatives=2), CancelToken())
            assert (generation.text, generation.candidates) == ("abc", ())
        assert len(server.bodies("/completion")) == 2  # one request each: no branches
    assert sum("inlineSuggestions has no effect" in r.getMessage() for r in caplog.records) == 1


def test_prefill_evaluates_the_prompt_into_the_slot() -> None:
    with fake_engine(script_of("abc")) as server:
        generator = llama(server.url)
        cancel = CancelToken()
        generator.generate(request(), cancel)
        future = generator.prefill([1, *ids("x = 1\n")], after=cancel)
        assert future is not None and future.result(timeout=5) >= 0
        body = server.bodies("/completion")[-1]
        assert (body["n_predict"], body["id_slot"]) == (0, 1)
        assert generator.prefill([1], after=CancelToken()) is None  # a newer request came
        generator.close()


def test_openai_prompts_are_text_with_the_markers_written_out() -> None:
    script = Script(openai_text=["1 +", " 2", "\nprint(x)"])
    with fake_engine(script) as server:
        client, info = detect(server.url + "/v1")
        generator = OpenAIGenerator(client, CharVocab(), info, "test")
        stop = lambda text: text.index("\n") if "\n" in text else None  # noqa: E731
        generation = generator.generate(
            request(prompt=[1, *ids("x = "), MARKER], stop=stop, forced_prefix=" "), CancelToken()
        )
        assert (generation.text, generation.finish_reason) == (" 1 + 2", "stop")
        first, second = server.bodies("/v1/completions")
        # Healing by agreement: asked without the typed tail first (no BOS: the server adds
        # it); "1 +" does not start with " ", so asked again with the tail as typed.
        assert first["prompt"] == "x = <|fim_middle|>" and second["prompt"] == "x = <|fim_middle|> "
        assert (second["model"], second["temperature"], second["stream"]) == ("fake-model", 0.0, True)


def test_openai_answers_that_agree_with_the_typed_tail_are_kept() -> None:
    """A space typed after a keyword: sent as typed, a prompt ending in a lone space (which
    the model rarely saw) mostly ends the answer; without it the model writes " os"."""
    script = Script(openai_text=["\n"], openai_after={"import": [" o", "s", "\n"]})
    with fake_engine(script) as server:
        client, info = detect(server.url + "/v1")
        generator = OpenAIGenerator(client, CharVocab(), info, "test")
        stop = lambda text: text.index("\n") if "\n" in text else None  # noqa: E731
        generation = generator.generate(
            request(prompt=[1, *ids("import")], stop=stop, forced_prefix=" "), CancelToken()
        )
        assert (generation.text, generation.finish_reason) == (" os", "stop")
        assert [b["prompt"] for b in server.bodies("/v1/completions")] == ["import"]  # one request
    # An answer that ends before it has written the typed tail is asked again with the tail.
    script = Script(openai_text=[" "], openai_after={"import": [" "]})
    with fake_engine(script) as server:
        client, info = detect(server.url + "/v1")
        generator = OpenAIGenerator(client, CharVocab(), info, "test")
        generation = generator.generate(
            request(prompt=[1, *ids("import")], forced_prefix=" os."), CancelToken()
        )
        assert [b["prompt"] for b in server.bodies("/v1/completions")] == ["import", "import os."]
        assert generation.text == " os. "


def test_prompt_as_text_writes_control_tokens() -> None:
    assert prompt_as_text(CharVocab(), [*ids("a"), MARKER, *ids("b")]) == "a<|fim_middle|>b"


def test_the_servers_tokenizer_when_there_is_no_local_file() -> None:
    with fake_engine(Script()) as server:
        client = EngineClient(detect(server.url)[0].endpoint)
        vocab = ServerVocabulary(client, 2048, {"bos_token": "<s>", "eos_token": "</s>"})
        assert vocab.tokenize("ab") == [97, 98] and vocab.add_bos and vocab.bos_id == 1
        assert vocab.tokenize("ab") == [97, 98]
        assert len(server.bodies("/tokenize")) <= 6  # the second "ab" came from the cache
        assert vocab.detokenize([97, 98]) == "ab" and vocab.token_piece(99) == "c"


def test_the_time_budget_starts_with_the_first_token() -> None:
    """As in-process, where it starts once the prompt is evaluated: a server slow to evaluate
    the prompt does not cut the completion to nothing."""
    with fake_engine(script_of("abc", hang_s=0.5)) as server:
        generation = llama(server.url).generate(request(time_budget_s=0.2), CancelToken())
        assert (generation.text, generation.finish_reason) == ("abc", "eos")
    with fake_engine(script_of("abcdefgh", delay_s=0.1)) as server:
        generation = llama(server.url).generate(request(time_budget_s=0.25), CancelToken())
        assert generation.finish_reason == "budget" and 0 < len(generation.text) < 8


def test_an_engine_down_at_start_is_connected_when_it_answers() -> None:
    """With the tokenizer here (modelPath), Inkling starts without the engine, says what is
    wrong on each request, and connects once it answers."""
    from lsp_server.models import ensure_base_model
    from lsp_server.remote import open_engine
    from lsp_server.settings import Settings

    port = _closed_port()
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(Exception, match="refused the connection"):
        open_engine(Settings(engine_url=url))  # no tokenizer here: the load fails, saying why
    generator = open_engine(Settings(engine_url=url, model_path=str(ensure_base_model())))
    try:
        assert not generator.connected and generator.model.n_ctx == Settings().context_size
        with pytest.raises(EngineError, match="refused the connection"):
            generator.generate(request(), CancelToken())
        with fake_engine(Script(tokens=[1000, 1001, 1002], n_ctx=1024), port=port):  # Gemma's ids
            generation = generator.generate(request(), CancelToken())
            assert generator.connected and generator.model.n_ctx == 1024
            assert generation.finish_reason == "eos" and generation.generated_tokens == 3
    finally:
        generator.close()


def test_doctor_checks_the_engine() -> None:
    from lsp_server.doctor import run_doctor
    from lsp_server.models import ensure_base_model
    from lsp_server.settings import Settings

    script = Script(tokens=[1000, 1001, 1002], n_ctx=2048, slots=4)
    with fake_engine(script) as server:
        report = run_doctor(Settings(engine_url=server.url, model_path=str(ensure_base_model())))
    checks = {check.name: check for check in report.checks}
    assert checks["engine"].ok and "llama.cpp server" in checks["engine"].detail
    assert "context 2048 per slot, 4 slots" in checks["engine"].detail
    assert checks["engine tokenizer"].ok and "local" in checks["engine tokenizer"].detail
    assert checks["engine speed"].ok and "first token" in checks["engine speed"].detail
    assert "completion" in checks and checks["offline"].ok  # only the engine was reached
    assert "model file" not in checks  # nothing loaded in-process
    down = run_doctor(Settings(engine_url=f"http://127.0.0.1:{_closed_port()}"), speed_probe=False)
    assert not down.ok and "refused the connection" in {c.name: c for c in down.checks}["engine"].detail


def test_the_servers_tokenizer_learns_pieces_from_the_top_tokens() -> None:
    script = script_of("\nfoo", top={0: [(ord("\n"), -0.1), (ord("b"), -2.0), (ord("q"), -3.0)]})
    with fake_engine(script) as server:
        client, info = detect(server.url)
        vocab = ServerVocabulary(client, 2048, {"bos_token": "<s>", "eos_token": "</s>"})
        generator = LlamaServerGenerator(client, vocab, info, "the server's /tokenize")
        generator.generate(request(start_on_line=True, max_tokens=2), CancelToken())
        assert server.bodies("/completion")[1]["prompt"][-1] == ord("b")
        assert vocab.token_piece(ord("q")) == "q"  # learned: never asked of /detokenize
        detokenized = {t for body in server.bodies("/detokenize") for t in body["tokens"]}
        assert ord("q") not in detokenized and ord("b") not in detokenized
