"""The LSP front end: handlers, and conversions between LSP types and Inkling's own.

The work is the completion service's (`service.py`); JSON-RPC hardening is
`protocol.py`'s; the model loads in `model_slot.py`. This module turns
protocol requests into service calls, their results into LSP items, and
Inkling's errors into `window/showMessage`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from lsp_server import __version__
from lsp_server.acceptance import ACCEPT_COMMAND, AcceptanceLog
from lsp_server.documents import UTF8, UTF16, UTF32, DocumentSnapshot
from lsp_server.early_load import EarlyLoad
from lsp_server.errors import DocumentError, InklingError
from lsp_server.feedback import FeedbackTracker, OfferContext, model_fingerprint, shaping_settings
from lsp_server.load_progress import LoadProgress
from lsp_server.model_slot import ModelSlot, ModelState
from lsp_server.pipeline import Completion
from lsp_server.protocol import InklingProtocol, is_unparseable, quiet_client_errors
from lsp_server.service import Change, CompletionService, uri_to_path
from lsp_server.settings import Settings, SettingsLayer, changed_reload_fields, layer_from_client, merge

log = logging.getLogger(__name__)

_ENCODINGS: dict[str, str] = {
    types.PositionEncodingKind.Utf8.value: UTF8,
    types.PositionEncodingKind.Utf16.value: UTF16,
    types.PositionEncodingKind.Utf32.value: UTF32,
}
_WORD_TAIL = re.compile(r"[\w$]+$")
_SHOWN_LIMIT = 200
STATUS_NOTIFICATION = "inkling/status"
DOCUMENT_STATE_REQUEST = "inkling/documentState"


class InklingServer(LanguageServer):
    """One client session: its settings, messages and progress; the work is `service`'s."""

    def __init__(self, base_layers: list[SettingsLayer], early_load: EarlyLoad | None = None) -> None:
        super().__init__("inkling", __version__, protocol_cls=InklingProtocol, max_workers=4)
        self.base_layers = base_layers
        self.client_layers: list[SettingsLayer] = []
        self.service = CompletionService(merge(base_layers), early_load)
        self.acceptance = AcceptanceLog()
        self.feedback = FeedbackTracker()
        """Offers and their outcomes, kept only with `recordFeedback` (feedback.py)."""
        self.client_name = "unknown client"
        self.event_loop: asyncio.AbstractEventLoop | None = None
        """The loop the handlers run on: messages from worker threads are sent through it."""
        self._shown: dict[str, None] = {}
        cast(InklingProtocol, self.protocol).hooks = self
        quiet_client_errors()

    @property
    def settings(self) -> Settings:
        return self.service.settings

    @property
    def encoding(self) -> str:
        negotiated = self.workspace.position_encoding
        key = negotiated.value if isinstance(negotiated, types.PositionEncodingKind) else negotiated
        return _ENCODINGS.get(key or "", UTF16)

    # -- what the protocol tells us (protocol.ProtocolHooks) ----------------------------

    def lost_edit(self, uri: str, reason: str) -> None:
        if self.service.lost_edit(uri, reason):
            self.tell(
                f"an edit to {uri} could not be read ({reason}); no completions for it until it is reopened"
            )

    def client_gone(self) -> None:
        self.service.scheduler.cancel_all("the client is gone")

    # -- messages to the user --------------------------------------------------------

    def tell(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """Log a problem, and show it in the editor once per session."""
        log.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, message)
        if message in self._shown:
            return
        self._shown[message] = None
        if len(self._shown) > _SHOWN_LIMIT:  # a hostile client can make endless distinct messages
            del self._shown[next(iter(self._shown))]
        self.in_loop(
            self.window_show_message,
            types.ShowMessageParams(type=kind, message=f"Inkling: {message}"),
        )

    def report_server_error(self, error: Exception, source: Any) -> None:
        if is_unparseable(error):  # the body was not JSON: pygls calls this
            self.protocol.parse_error(error)  # type: ignore[attr-defined]
            return
        super().report_server_error(error, source)

    def in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn` on the event loop thread (pygls' writer is not thread-safe)."""
        loop = self.event_loop
        if loop is None or loop.is_closed() or self.protocol._shutdown:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def status(self) -> dict[str, Any]:
        service, slot = self.service, self.service.slot
        pipeline = service.pipeline
        engine = slot.engine
        return {
            "state": slot.state.value,
            "model": slot.model_path,
            "lora": str(engine.model.lora or "") if engine is not None and engine.ready else "",
            "template": pipeline.template.family if pipeline is not None else None,
            "error": slot.error,
            "lastLatencyMs": service.last_latency_ms,
            "cacheHits": service.cache.hits,
            "index": {
                "files": service.index.size[0],
                "definitions": service.index.size[1],
                "ring": service.project.ring_size,
            },
            "encoding": self.encoding if self.protocol._workspace is not None else None,
            "acceptance": self.acceptance.session(),
            "feedback": {
                "recording": self.settings.record_feedback,
                "pending": self.feedback.pending,
                "written": self.feedback.sink.written,
            },
            "engine": service.engine_counters(),
            "modelLoads": slot.engines_loaded,
        }

    def send_status(self) -> None:
        self.in_loop(self.protocol.notify, STATUS_NOTIFICATION, self.status())

    # -- settings and the model ------------------------------------------------------

    def apply_client_settings(self, raw: Any, source: str) -> None:
        layer = layer_from_client(raw, source)
        for warning in layer.warnings:
            self.tell(warning)
        self.client_layers = [*self.client_layers, layer]
        old = self.service.settings
        self.service.settings = merge([*self.base_layers, *self.client_layers])
        if old.record_feedback and not self.service.settings.record_feedback:
            self.feedback.discard()  # turned off: what is pending is not written
        if self.service.slot.state in (ModelState.READY, ModelState.FAILED):
            changed = changed_reload_fields(old, self.service.settings)
            if changed:
                log.info("settings %s changed: loading the model again", ", ".join(changed))
                self.start_model_load()

    def start_model_load(self) -> None:
        self.event_loop = self.event_loop or asyncio.get_running_loop()
        progress = LoadProgress(self)

        def done(slot: ModelSlot) -> None:  # on the loading thread
            self.in_loop(self._model_loaded, slot, slot.loads, progress)

        self.service.load_model(progress.report, done)
        self.send_status()

    def _model_loaded(self, slot: ModelSlot, load: int, progress: LoadProgress) -> None:
        if load != slot.loads:  # settings changed again meanwhile: a newer load is under way
            progress.end("replaced by a newer load")
            return
        pipeline = self.service.pipeline
        if slot.state is ModelState.READY and slot.engine is not None and pipeline is not None:
            template = pipeline.template
            message = (
                f"model ready in {slot.engine.stats.load_seconds:.1f}s ({template.family} prompt format)"
            )
            log.info("%s: %s", message, slot.model_path)
        else:
            message = "model failed to load"
            setting = "engineUrl" if self.settings.engine_url else "modelPath"
            self.tell(
                f"could not load the model: {slot.error}. "
                f"Completions are off until the {setting} setting is fixed.",
                types.MessageType.Error,
            )
        progress.end(message)
        self.send_status()

    def stop_work(self) -> None:
        """Cancel every generation, stop indexing, save the acceptance counts and free
        the model: on shutdown, on SIGTERM and when the client goes away unannounced."""
        self.acceptance.flush()
        self.feedback.settle_all("ended")
        self.feedback.sink.close()
        self.service.stop()

    # -- completion --------------------------------------------------------------------

    async def complete_at(
        self, uri: str, position: types.Position, *, explicit: bool = False
    ) -> tuple[Completion, DocumentSnapshot] | None:
        """The service's answer for a cursor; None when there is nothing to offer.
        `explicit`: the user asked, so alternatives are worth their time."""
        try:
            answer = await self.service.complete(
                uri, position.line, position.character, self.encoding, explicit=explicit
            )
        except InklingError as exc:
            self.tell(str(exc))
            return None
        return None if answer is None else (answer.completion, answer.document)


# -- conversions ---------------------------------------------------------------------------


def inline_items(
    server: InklingServer, completion: Completion, view: DocumentSnapshot
) -> types.InlineCompletionList:
    """The answer, then its alternatives (`inlineSuggestions`), for editors that cycle."""
    line, character = view.position_at(completion.offset, server.encoding)
    position = types.Position(line=line, character=character)
    texts = completion.items[: server.settings.inline_suggestions]
    commands = _accept_commands(server, view, completion, "inline", texts)
    items = [
        types.InlineCompletionItem(
            insert_text=text, range=types.Range(start=position, end=position), command=command
        )
        for text, command in zip(texts, commands, strict=True)
    ]
    return types.InlineCompletionList(items=items)


def completion_items(
    server: InklingServer, completion: Completion, view: DocumentSnapshot
) -> types.CompletionList:
    """One item carrying the whole completion, for clients without ghost text, then one per
    alternative (`inlineSuggestions`), in their order.

    Each edit starts at the beginning of the word being typed, so that clients
    which filter by that word (Helix, Neovim's menu) keep showing them."""
    encoding = server.encoding
    line_start = view.offset_at(view.position_at(completion.offset, encoding)[0], 0, encoding)
    word = _WORD_TAIL.search(view.text[line_start : completion.offset])
    word_text = word.group(0) if word else ""
    start = view.position_at(completion.offset - len(word_text), encoding)
    end = view.position_at(completion.offset, encoding)
    edit_range = types.Range(
        start=types.Position(line=start[0], character=start[1]),
        end=types.Position(line=end[0], character=end[1]),
    )
    texts = completion.items[: server.settings.inline_suggestions]
    commands = _accept_commands(server, view, completion, "menu", texts)
    items = [
        _menu_item(word_text + text, word_text, edit_range, place, command)
        for place, (text, command) in enumerate(zip(texts, commands, strict=True))
    ]
    return types.CompletionList(is_incomplete=True, items=items)


def _menu_item(
    new_text: str, word_text: str, edit_range: types.Range, place: int, command: types.Command
) -> types.CompletionItem:
    first_line = new_text.split("\n", 1)[0]
    label = first_line.strip() or new_text.strip().split("\n", 1)[0]
    if "\n" in new_text:
        label += " …"
    return types.CompletionItem(
        label=label[:80],
        kind=types.CompletionItemKind.Text,
        detail="Inkling",
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{new_text}\n```"),
        filter_text=word_text + first_line[len(word_text) :],
        sort_text=str(place),
        preselect=place == 0,
        insert_text_format=types.InsertTextFormat.PlainText,
        insert_text_mode=types.InsertTextMode.AsIs,
        command=command,
        text_edit=types.TextEdit(range=edit_range, new_text=new_text),
    )


def _accept_commands(
    server: InklingServer, view: DocumentSnapshot, completion: Completion, kind: str, texts: Sequence[str]
) -> list[types.Command]:
    """One command per item: the answer counts once as offered, whichever item is accepted
    (acceptance.py), and is recorded with its alternatives, with `recordFeedback`; the client
    runs an item's command when the user accepts that item."""
    ids = server.acceptance.offered_items(server.client_name, view.language_id, kind, len(texts))
    if server.settings.record_feedback and texts:
        server.feedback.sink.max_bytes = server.settings.feedback_max_mib << 20
        server.feedback.offered(
            ids[0],
            view.uri,
            view.text,
            completion.offset,
            texts[0],
            _offer_context(server, view, completion, kind),
            alternatives=dict(zip(ids[1:], texts[1:], strict=True)),
        )
    return [types.Command(title="Inkling: accepted", command=ACCEPT_COMMAND, arguments=[i]) for i in ids]


def _offer_context(
    server: InklingServer, view: DocumentSnapshot, completion: Completion, kind: str
) -> OfferContext:
    """What the feedback store keeps about an offer besides its text: where, which model
    (name and a cheap fingerprint), which prompt format and settings."""
    settings = server.settings
    slot = server.service.slot
    engine = slot.engine
    lora = engine.model.lora if engine is not None and engine.ready else None
    pipeline = server.service.pipeline
    template = pipeline.template if pipeline is not None else None
    if template is None:
        family, order = "", ""
    elif not template.is_fim:
        family, order = template.family, "prefix"
    else:
        family, order = template.family, settings.fim_order or template.order
    return OfferContext(
        language=view.language_id or "unknown",
        kind=kind,
        mode=completion.mode.value,
        client=server.client_name,
        file=Path(uri_to_path(view.uri)).name,
        model=Path(slot.model_path).name,
        model_hash=model_fingerprint(slot.model_path, lora),
        template=family,
        prompt_order=order,
        settings=shaping_settings(settings),
        prefix_tokens=settings.prefix_tokens,
        suffix_tokens=settings.suffix_tokens,
    )


def _changes(params: types.DidChangeTextDocumentParams) -> list[Change]:
    changes: list[Change] = []
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            start, end = change.range.start, change.range.end
            changes.append((change.text, (start.line, start.character), (end.line, end.character)))
        else:
            changes.append((change.text, None, None))
    return changes


def _workspace_roots(params: types.InitializeParams) -> list[Path]:
    uris = [folder.uri for folder in params.workspace_folders or []]
    if not uris and params.root_uri:
        uris = [params.root_uri]
    roots = [Path(uri_to_path(uri)) for uri in uris if uri.startswith("file:")]
    if not uris and params.root_path:
        roots = [Path(params.root_path)]
    return [root for root in roots if root.is_dir()]


def _client_name(params: types.InitializeParams, with_version: bool = True) -> str:
    info = params.client_info
    if info is None:
        return "unknown client"
    return f"{info.name} {info.version or ''}".strip() if with_version else info.name


# -- handlers ------------------------------------------------------------------------------


def initialize(ls: InklingServer, params: types.InitializeParams) -> None:
    ls.event_loop = asyncio.get_running_loop()
    for layer in ls.base_layers:
        for warning in layer.warnings:
            ls.tell(warning)
    if params.initialization_options is not None:
        ls.apply_client_settings(params.initialization_options, "initializationOptions")
    ls.service.index.roots = _workspace_roots(params)
    ls.client_name = _client_name(params, with_version=False)
    log.info("client %s, positions in %s", _client_name(params), ls.encoding)


def initialized(ls: InklingServer, params: types.InitializedParams) -> None:
    ls.start_model_load()
    if ls.settings.context_tokens > 0 and ls.settings.context_definitions:
        ls.service.index.start_crawl()


def shutdown(ls: InklingServer, params: None) -> None:
    ls.stop_work()


def status(ls: InklingServer, params: Any) -> dict[str, Any]:
    """Custom request: model state, for status bars and tests."""
    return ls.status()


def accepted(ls: InklingServer, *arguments: Any) -> None:
    """Sent by the client when the user accepts an item (for the acceptance rate)."""
    item_id = arguments[0] if arguments else None
    ls.feedback.accepted(item_id)
    if not ls.acceptance.accepted(item_id):
        log.debug("%s for an unknown or already counted item %r", ACCEPT_COMMAND, item_id)


def did_open(ls: InklingServer, params: types.DidOpenTextDocumentParams) -> None:
    doc = params.text_document
    ls.service.open(doc.uri, doc.language_id, doc.version, doc.text)


def did_change(ls: InklingServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    try:
        ls.service.change(uri, params.text_document.version, _changes(params), ls.encoding)
    except DocumentError as exc:
        ls.feedback.closed(uri, "moved")  # the buffer is out of step: what was typed is unknown
        ls.tell(f"could not apply an edit: {exc}")
        return
    if ls.feedback.watching(uri):
        ls.feedback.changed(uri, ls.service.documents.snapshot(uri).text)


def did_close(ls: InklingServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.feedback.closed(params.text_document.uri)
    ls.service.close(params.text_document.uri)


async def did_change_configuration(ls: InklingServer, params: types.DidChangeConfigurationParams) -> None:
    raw = params.settings
    if raw is None or raw == {}:
        raw = await _pull_configuration(ls)
    if raw is not None:
        ls.apply_client_settings(raw, "workspace/didChangeConfiguration")


async def _pull_configuration(ls: InklingServer) -> Any:
    workspace = ls.client_capabilities.workspace
    if workspace is None or not workspace.configuration:
        return None
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="inkling")])
        )
    except Exception as exc:  # a client that fails this request must not stop the server
        log.warning("workspace/configuration failed: %s", exc)
        return None
    return result[0] if result else None


async def inline_completion(
    ls: InklingServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    # Invoked: a keybinding, or VS Code cycling through suggestions (it then wants them all).
    explicit = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    found = await ls.complete_at(params.text_document.uri, params.position, explicit=explicit)
    if found is None:
        return types.InlineCompletionList(items=[])
    return inline_items(ls, *found)


async def completion(ls: InklingServer, params: types.CompletionParams) -> types.CompletionList:
    # Never explicit: menu clients (Helix, nvim-cmp) send "Invoked" while the user types too.
    found = await ls.complete_at(params.text_document.uri, params.position)
    if found is None:
        return types.CompletionList(is_incomplete=True, items=[])
    return completion_items(ls, *found)


def document_state(ls: InklingServer, params: Any) -> dict[str, Any]:
    """Debug request {"uri"} -> the server's copy of that buffer: version, SHA-256 of its
    UTF-8 text, size, line count, and why it is out of step with the editor (or null).
    It reveals fingerprints, never buffer text."""
    uri = getattr(params, "uri", None)
    if not isinstance(uri, str):
        log.warning("%s without a uri", DOCUMENT_STATE_REQUEST)
        raise JsonRpcInvalidParams(f'{DOCUMENT_STATE_REQUEST} needs {{"uri": "..."}}')
    try:
        state = ls.service.documents.state(uri)
    except DocumentError as exc:
        log.warning("%s: %s", DOCUMENT_STATE_REQUEST, exc)
        raise JsonRpcInvalidParams(str(exc)) from exc
    return {
        "uri": state.uri,
        "version": state.version,
        "sha256": state.sha256,
        "utf8Bytes": state.utf8_bytes,
        "lines": state.lines,
        "outOfSync": state.out_of_sync,
    }


def create_server(base_layers: list[SettingsLayer], early_load: EarlyLoad | None = None) -> InklingServer:
    """A server with Inkling's handlers registered; start it with start_io/start_tcp."""
    server = InklingServer(base_layers, early_load)
    for method, handler in (
        (types.INITIALIZE, initialize),
        (types.INITIALIZED, initialized),
        (types.SHUTDOWN, shutdown),
        (STATUS_NOTIFICATION, status),
        (types.TEXT_DOCUMENT_DID_OPEN, did_open),
        (types.TEXT_DOCUMENT_DID_CHANGE, did_change),
        (types.TEXT_DOCUMENT_DID_CLOSE, did_close),
        (types.WORKSPACE_DID_CHANGE_CONFIGURATION, did_change_configuration),
        (DOCUMENT_STATE_REQUEST, document_state),
    ):
        server.feature(method)(handler)
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(inline_completion)
    server.feature(
        types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " ", "\n"])
    )(completion)
    server.command(ACCEPT_COMMAND)(accepted)
    return server
