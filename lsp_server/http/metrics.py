"""`GET /metrics` in Prometheus' text format, with prometheus_client (one registry per
server, so that two servers in one process, as in tests, count apart)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from lsp_server.pipeline import Completion, Status

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class _EngineCollector(Collector):
    """The engine's own running totals and the scheduler's queue, read at each scrape."""

    def __init__(
        self,
        counters: Callable[[], dict[str, float] | None],
        pending: Callable[[], int],
        loaded: Callable[[], list[str]],
        model_loads: Callable[[], int],
    ) -> None:
        self.counters = counters
        self.pending = pending
        self.loaded = loaded
        self.model_loads = model_loads

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "inkling_requests_pending", "Completion jobs queued or running.", value=self.pending()
        )
        models = GaugeMetricFamily("inkling_model_loaded", "Models loaded (1) now.", labels=["model"])
        for name in self.loaded():
            models.add_metric([name], 1)
        yield models
        yield CounterMetricFamily(
            "inkling_model_loads",
            "Models brought into memory since the server started (LSP beside HTTP shares one load).",
            value=self.model_loads(),
        )
        counters = self.counters() or {}
        for key, name, text in (
            ("requests", "inkling_engine_generations", "Generations the engine started."),
            ("cancelled", "inkling_engine_cancelled", "Generations stopped by a cancel or a newer request."),
        ):
            yield CounterMetricFamily(name, text, value=counters.get(key, 0))


class Metrics:
    def __init__(
        self,
        engine_counters: Callable[[], dict[str, float] | None] = lambda: None,
        pending: Callable[[], int] = lambda: 0,
        loaded: Callable[[], list[str]] = list,
        model_loads: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(engine_counters, pending, loaded, model_loads))
        self.requests = Counter(
            "inkling_http_requests",
            "HTTP requests answered, by endpoint, user and status code.",
            ("endpoint", "user", "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "inkling_http_request_seconds",
            "Time from request to response, completions only.",
            ("endpoint",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "inkling_prompt_tokens", "Prompt tokens, by model.", ("model",), registry=self.registry
        )
        self.reused_tokens = Counter(
            "inkling_prompt_tokens_reused",
            "Prompt tokens found in the KV cache, by model.",
            ("model",),
            registry=self.registry,
        )
        self.generated_tokens = Counter(
            "inkling_generated_tokens", "Generated tokens, by model.", ("model",), registry=self.registry
        )
        self.outcomes = Counter(
            "inkling_completions",
            "Completions by outcome (offered, empty, skipped, cancelled, cached), model and user.",
            ("outcome", "model", "user"),
            registry=self.registry,
        )

        self.disconnects = Counter(
            "inkling_http_disconnects",
            "Requests whose client closed the connection before the answer (their work stopped).",
            ("endpoint",),
            registry=self.registry,
        )

        self.events = Counter(
            "inkling_http_events",
            "What editors said became of completions (view, select, dismiss), by user.",
            ("type", "user"),
            registry=self.registry,
        )

    def completed(self, endpoint: str, model: str, user: str, completion: Completion, seconds: float) -> None:
        self.latency.labels(endpoint).observe(seconds)
        self.outcomes.labels(completion.status.value, model, user).inc()
        generation = completion.generation
        if generation is not None and completion.status is not Status.CACHED:
            self.prompt_tokens.labels(model).inc(generation.prompt_tokens)
            self.reused_tokens.labels(model).inc(generation.reused_tokens)
            self.generated_tokens.labels(model).inc(generation.generated_tokens)

    def text(self) -> bytes:
        return generate_latest(self.registry)
