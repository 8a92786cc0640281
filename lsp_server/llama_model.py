"""A typed, minimal wrapper over llama.cpp's C API (through llama-cpp-python).

Inkling drives llama.cpp directly rather than through `llama_cpp.Llama`: it
builds its own token lists (FIM control tokens included), keeps track of what
is in the KV cache, and needs the abort callback and the load-progress
callback that the high-level class does not expose. Not thread-safe: the
engine's owner thread is the only caller of the decoding methods.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import llama_cpp
import numpy as np
import numpy.typing as npt

from lsp_server.errors import ModelError, RequestCancelledError
from lsp_server.token_cache import TokenCache

LORA_KEY = "inkling.lora.file"
"""GGUF metadata: the file name of a LoRA adapter (llama.cpp's GGUF format), next to the
model file, that belongs to the model and is applied whenever it is loaded."""

log = logging.getLogger(__name__)
llama_log = logging.getLogger("inkling.llama_cpp")

_backend_ready = False
_backend_lock = threading.Lock()

# ggml log levels: 1 debug, 2 info (very chatty), 3 warning, 4 error, 5 continuation.
_LLAMA_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}
_recent_errors: collections.deque[str] = collections.deque(maxlen=6)
# Warnings llama.cpp prints for every healthy Gemma 3 file; not worth a user's attention.
_BENIGN = (
    "control-looking token",
    "using full-size SWA cache",
    "special_eos_id is not in special_eog_ids",
    "fallback to CPU",  # a LoRA's tensors stay in plain CPU memory beside repacked weights
)


_decoding = threading.local()
"""The AbortFlag of the decode running on this thread (llama.cpp logs on the caller's thread)."""


def _route_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # llama.cpp logs a great deal at INFO; keep it at DEBUG unless it is a problem.
    message = text.decode("utf-8", "replace").rstrip()
    if message:
        if level == 4:
            _recent_errors.append(message)
        severity = _LLAMA_LOG_LEVELS.get(level, logging.DEBUG)
        if any(text in message for text in _BENIGN):
            severity = logging.DEBUG
        abort: threading.Event | None = getattr(_decoding, "abort", None)
        if abort is not None and abort.is_set():
            severity = logging.DEBUG  # "failed to compute graph": we asked it to stop
        llama_log.log(severity, message)


_LOG_CALLBACK = llama_cpp.llama_log_callback(_route_llama_log)  # kept alive for llama.cpp


def init_backend() -> None:
    """Start llama.cpp once per process, with its log routed to Python logging."""
    global _backend_ready  # noqa: PLW0603 - process-wide llama.cpp state
    with _backend_lock:
        if not _backend_ready:
            llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _backend_ready = True


AMX_CRASH = "https://github.com/ggml-org/llama.cpp/issues/20824"
_amx_reported = False


def model_params(*, vocab_only: bool = False, n_gpu_layers: int = 0) -> llama_cpp.llama_model_params:
    """llama.cpp's model parameters, minus its AMX weight buffers where the build has them.

    A llama.cpp built on a CPU with AMX (Sapphire Rapids and later) moves Q4_K
    weights into AMX buffers, and its AMX matrix multiply crashes the process
    on the first decode on some such machines (`AMX_CRASH`; seen here on a
    2-core VM: a segfault in `ggml_backend_amx_mul_mat`). A crash would take
    the editor's server down with it, so those builds load weights into plain
    CPU memory instead (`use_extra_bufts` off: no AMX, no repacking). Elsewhere
    the defaults stay."""
    global _amx_reported  # noqa: PLW0603 - said once per process
    init_backend()
    params: llama_cpp.llama_model_params = llama_cpp.llama_model_default_params()
    params.vocab_only = vocab_only
    # llama.cpp's own default offloads every layer when a GPU backend is built in: Inkling
    # offloads only what the gpuLayers setting asks for.
    params.n_gpu_layers = n_gpu_layers
    if not vocab_only and builds_amx():
        params.use_extra_bufts = False
        if not _amx_reported:
            log.info("llama.cpp has AMX kernels: weights stay in plain CPU buffers (%s)", AMX_CRASH)
            _amx_reported = True
    return params


def build_features() -> tuple[list[str], bool]:
    """The CPU features this llama.cpp was compiled for (its system line's `NAME = 1`) and
    whether it can offload layers to a GPU."""
    init_backend()
    line = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    features = [
        name.strip()
        for name, _, value in (part.partition("=") for part in line.split("|"))
        if value.strip() == "1"
    ]
    features = [name.removeprefix("CPU : ") for name in features]
    return features, bool(llama_cpp.llama_supports_gpu_offload())


def builds_amx() -> bool:
    """Whether this llama.cpp build would use AMX (its system line says AMX_INT8 = 1)."""
    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


_FIM_GETTERS = {
    "pre": llama_cpp.llama_vocab_fim_pre,
    "suf": llama_cpp.llama_vocab_fim_suf,
    "mid": llama_cpp.llama_vocab_fim_mid,
    "pad": llama_cpp.llama_vocab_fim_pad,
    "rep": llama_cpp.llama_vocab_fim_rep,
    "sep": llama_cpp.llama_vocab_fim_sep,
}

DECODE_ABORTED = 2


def _c_strlen() -> ctypes.c_void_p | None:
    """libc's strlen, or None where it cannot be found (then the flag is polled from Python)."""
    try:
        libc = ctypes.CDLL(None)
        return ctypes.cast(libc.strlen, ctypes.c_void_p)
    except (OSError, AttributeError, TypeError):
        return None


_STRLEN = _c_strlen()


class AbortFlag:
    """A stop flag that llama.cpp polls without taking Python's GIL.

    ggml asks the abort callback before every node of the graph: hundreds of
    times per token. A Python callback takes the GIL each time, so whenever the
    LSP thread is busy (applying an edit, parsing) the decode stalls: measured
    75 -> 95 ms a token with one busy Python thread beside it. libc's strlen
    serves as the callback instead: given this two-byte buffer it returns 1
    when the flag is set and 0 when it is clear, which llama.cpp reads as its
    bool (the C ABIs return both in the same register)."""

    def __init__(self) -> None:
        self._buffer = ctypes.create_string_buffer(2)

    def set(self) -> None:
        self._buffer[0] = b"x"

    def clear(self) -> None:
        self._buffer[0] = b"\0"

    def is_set(self) -> bool:
        return self._buffer[0] != b"\0"

    def install(self, ctx: ctypes.c_void_p) -> object:
        """Make this flag `ctx`'s abort callback; returns what must be kept alive."""
        if _STRLEN is not None and _STRLEN.value:
            callback = llama_cpp.ggml_abort_callback(_STRLEN.value)
            data = ctypes.cast(self._buffer, ctypes.c_void_p)
        else:
            callback = llama_cpp.ggml_abort_callback(lambda _data: self.is_set())
            data = ctypes.c_void_p(0)
        llama_cpp.llama_set_abort_callback(ctx, callback, data)
        return callback


class LlamaModel:
    """One model and one context (one sequence) in llama.cpp."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int,
        n_batch: int,
        on_progress: Callable[[float], None] | None = None,
        vocab_only: bool = False,
        n_seq_max: int = 1,
        n_gpu_layers: int = 0,
    ) -> None:
        init_backend()
        self.path = path
        self.lora: Path | None = None
        self._abort = AbortFlag()
        self._model: ctypes.c_void_p | None = None
        self._ctx: ctypes.c_void_p | None = None
        self._batch: llama_cpp.llama_batch | None = None

        params = model_params(vocab_only=vocab_only, n_gpu_layers=n_gpu_layers)
        # Keep a reference: llama.cpp calls it during loading.
        self._progress_cb = llama_cpp.llama_progress_callback(
            lambda value, _data: self._report_progress(on_progress, value)
        )
        params.progress_callback = self._progress_cb
        _recent_errors.clear()
        model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not model:
            reason = "; ".join(_recent_errors) or "no reason given"
            raise ModelError(f"llama.cpp could not load {path}: {reason}")
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.n_batch = n_batch
        self.n_ctx = n_ctx
        self._piece_cache: dict[int, bytes] = {}
        self._token_cache = TokenCache(lambda text: self._tokenize(text, False, False))
        if vocab_only:
            return

        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = n_ctx
        ctx_params.n_batch = n_batch
        ctx_params.n_ubatch = n_batch
        ctx_params.n_seq_max = n_seq_max
        # Sequences 1.. are branches of sequence 0 (candidate completions): in one unified
        # cache they share the cells of the prompt instead of each holding a copy.
        ctx_params.kv_unified = n_seq_max > 1
        ctx_params.n_threads = n_threads
        ctx_params.n_threads_batch = n_threads
        ctx_params.no_perf = True
        # Sliding-window models (Gemma 3) can only drop a tail of the KV cache
        # when the window cache is full size; without it every request restarts.
        ctx_params.swa_full = True
        ctx = llama_cpp.llama_init_from_model(model, ctx_params)
        if not ctx:
            self.close()
            raise ModelError(
                f"llama.cpp could not create a context of {n_ctx} tokens for {path}; "
                "try a smaller contextSize"
            )
        self._ctx = ctx
        self.lora = self._attach_declared_lora()
        self._abort_callback = self._abort.install(ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self.n_seq_max = n_seq_max
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._memory = llama_cpp.llama_get_memory(ctx)

    def declared_lora(self) -> Path | None:
        """The LoRA adapter file the model file names (`LORA_KEY`), if any; it must exist."""
        name = self.metadata(LORA_KEY)
        if not name:
            return None
        path = self.path.parent / name
        if Path(name).name != name or not path.is_file():
            raise ModelError(
                f"{self.path} needs its adapter {name!r} next to it, and it is missing "
                "(copy both files, or rebuild with `inkling model build`)"
            )
        return path

    def _attach_declared_lora(self) -> Path | None:
        """Apply the model's LoRA adapter at its own precision on top of the quantized weights:
        merged and re-quantized to 4-5 bits, a fine-tune's small delta is mostly rounded away."""
        try:
            path = self.declared_lora()
        except ModelError:
            self.close()
            raise
        if path is None:
            return None
        _recent_errors.clear()
        adapter = llama_cpp.llama_adapter_lora_init(self._model, str(path).encode("utf-8"))
        if not adapter:
            reason = "; ".join(_recent_errors) or "no reason given"
            self.close()
            raise ModelError(f"llama.cpp could not load the adapter {path}: {reason}")
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(1.0)
        if llama_cpp.llama_set_adapters_lora(self._ctx, adapters, 1, scales) != 0:
            self.close()
            raise ModelError(f"llama.cpp could not apply the adapter {path}")
        return path

    @staticmethod
    def _report_progress(callback: Callable[[float], None] | None, value: float) -> bool:
        if callback is not None:
            try:
                callback(float(value))
            except Exception:  # a progress display must never abort a load
                log.exception("progress callback failed")
        return True

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    # -- metadata and vocabulary -------------------------------------------

    def metadata(self, key: str) -> str | None:
        assert self._model is not None
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    @property
    def architecture(self) -> str:
        return self.metadata("general.architecture") or "unknown"

    def description(self) -> str:
        assert self._model is not None
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self._model, buf, 256)
        return buf.value.decode("utf-8", "replace")

    def size_bytes(self) -> int:
        assert self._model is not None
        return int(llama_cpp.llama_model_size(self._model))

    def n_params(self) -> int:
        assert self._model is not None
        return int(llama_cpp.llama_model_n_params(self._model))

    @property
    def bos_id(self) -> int:
        return int(llama_cpp.llama_vocab_bos(self._vocab))

    @property
    def add_bos(self) -> bool:
        return bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def is_control(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_control(self._vocab, token))

    def token_text(self, token: int) -> str:
        raw = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", "replace") if raw else ""

    def fim_token_ids(self) -> dict[str, int]:
        ids = {name: int(get(self._vocab)) for name, get in _FIM_GETTERS.items()}
        return {name: token for name, token in ids.items() if token >= 0}

    def special_token_id(self, text: str) -> int | None:
        tokens = self.tokenize(text, add_bos=False, special=True)
        if len(tokens) != 1:
            return None
        token = tokens[0]
        attr = int(llama_cpp.llama_vocab_get_attr(self._vocab, token))
        special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        return token if attr & special and self.token_text(token) == text else None

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        if add_bos or special:
            return self._tokenize(text, add_bos, special)
        return self._token_cache(text)  # prompt text: the same again and again while typing

    def _tokenize(self, text: str, add_bos: bool, special: bool) -> list[int]:
        data = text.encode("utf-8", "surrogatepass")
        capacity = len(data) + 8
        while True:
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_bos, special)
            if n >= 0:
                return list(buf[:n])
            capacity = -n + 8

    def piece(self, token: int) -> bytes:
        """The bytes a token adds to the text; control tokens add nothing."""
        cached = self._piece_cache.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
        piece = buf.raw[:n]
        self._piece_cache[token] = piece
        return piece

    def token_piece(self, token: int) -> str:
        return self.piece(token).decode("utf-8", "replace")

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    # -- evaluation -------------------------------------------------------------

    @property
    def abort_flag(self) -> AbortFlag:
        """Set it from any thread to stop the llama_decode call under way."""
        return self._abort

    def kv_truncate(self, n_keep: int) -> bool:
        """Drop every cached position from `n_keep` on; False if llama.cpp cannot."""
        return self.kv_remove(n_keep, -1)

    def kv_remove(self, start: int, end: int, seq: int = 0) -> bool:
        """Drop cached positions [start, end) (end -1: to the end) of sequence `seq`."""
        return bool(llama_cpp.llama_memory_seq_rm(self._memory, seq, start, end))

    def seq_copy(self, source: int, target: int) -> None:
        """Make sequence `target` hold what `source` holds (the cells are shared, not copied)."""
        llama_cpp.llama_memory_seq_cp(self._memory, source, target, -1, -1)

    def kv_shift(self, start: int, end: int, delta: int) -> None:
        """Move cached positions [start, end) by `delta` (RoPE is re-applied by llama.cpp)."""
        llama_cpp.llama_memory_seq_add(self._memory, 0, start, end, delta)

    @property
    def can_shift(self) -> bool:
        return bool(llama_cpp.llama_memory_can_shift(self._memory))

    def kv_clear(self) -> None:
        llama_cpp.llama_memory_clear(self._memory, True)

    def decode(self, tokens: Sequence[int], start_pos: int, *, logits_from: int | None = None) -> None:
        """Evaluate at most n_batch tokens at positions start_pos..; logits for the last
        (for tokens[logits_from:] when given: scoring, see `batch_logits`)."""
        assert self._ctx is not None and self._batch is not None
        n = len(tokens)
        if not 0 < n <= self.n_batch:
            raise ValueError(f"decode takes 1..{self.n_batch} tokens, got {n}")
        batch = self._batch
        batch.n_tokens = n
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start_pos + i  # type: ignore[call-overload]
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == n - 1 if logits_from is None else i >= logits_from
        self._run_batch(batch)

    def _run_batch(self, batch: llama_cpp.llama_batch) -> None:
        _decoding.abort = self._abort
        try:
            status = llama_cpp.llama_decode(self._ctx, batch)
        finally:
            _decoding.abort = None
        if status == DECODE_ABORTED:
            raise RequestCancelledError("prompt evaluation aborted")
        if status != 0:
            raise ModelError(f"llama_decode failed with status {status}")

    def decode_each(
        self, items: Sequence[tuple[int, int, int]], *, outputs: Sequence[int] | None = None
    ) -> None:
        """Evaluate at most n_batch (token, position, sequence) items in one batch, keeping
        the logits after the items whose indices are in `outputs` (all if None) for
        `logits_ith`: several sequences advance in one pass over the weights."""
        assert self._ctx is not None and self._batch is not None
        n = len(items)
        if not 0 < n <= self.n_batch:
            raise ValueError(f"decode_each takes 1..{self.n_batch} items, got {n}")
        kept = range(n) if outputs is None else frozenset(outputs)
        batch = self._batch
        batch.n_tokens = n
        for i, (token, position, seq) in enumerate(items):
            batch.token[i] = token
            batch.pos[i] = position  # type: ignore[call-overload]
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = i in kept
        self._run_batch(batch)

    def logits_ith(self, index: int) -> npt.NDArray[np.float32]:
        """The logits after item `index` of the last batch (valid until the next decode)."""
        assert self._ctx is not None
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def last_logits(self) -> npt.NDArray[np.float32]:
        assert self._ctx is not None
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def batch_logits(self, n: int) -> npt.NDArray[np.float32]:
        """A copy of the `n` rows of logits the last `decode(..., logits_from=...)` kept."""
        assert self._ctx is not None
        pointer = llama_cpp.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(pointer, shape=(n, self.n_vocab)).copy()
