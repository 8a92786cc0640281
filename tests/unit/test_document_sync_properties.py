"""Property tests of document sync: whatever edits an editor sends, the server's
copy of the buffer stays identical to the editor's, or is refused and says so.

The "editor" here is a plain str plus the position model of
`tests/editor_model.py`, written from the LSP specification. The server's `DocumentStore`
must agree with it after every change, in every encoding, with multi-byte and
astral characters, CRLF, lone CR and (as JSON allows) lone surrogates.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp_server import syntax
from lsp_server.documents import UTF8, UTF16, UTF32, Document, DocumentStore
from lsp_server.errors import DocumentError
from lsp_server.languages import language_for_id
from tests.editor_model import clamped_offset, position_of, valid_offsets

ENCODINGS = (UTF8, UTF16, UTF32)
PIECES = [
    "a",
    "x = 1",
    " ",
    "\t",
    "(",
    ")",
    ":",
    "def f():",
    "    ",
    "\n",
    "\r",
    "\r\n",
    "é",
    "€",
    "ж",
    "😀",
    "𝔸",
    "\u200d",  # zero-width joiner
    "e\u0301",  # combining accent
    '"',
    "#",
]
LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]

texts = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)
texts_with_surrogates = st.lists(st.sampled_from(PIECES + LONE_SURROGATES), max_size=30).map("".join)


@st.composite
def edit_sessions(draw: st.DrawFn, alphabet: st.SearchStrategy[str] = texts) -> tuple[str, list[list[tuple]]]:
    """An initial text and didChange batches, each change addressed in the editor's text
    as it is when that change applies (as LSP orders changes within one notification)."""
    initial = text = draw(alphabet)
    batches = []
    for _ in range(draw(st.integers(1, 8))):
        batch = []
        for _ in range(draw(st.integers(1, 3))):
            offsets = valid_offsets(text)
            a = draw(st.sampled_from(offsets))
            b = draw(st.sampled_from(offsets))
            start, end = min(a, b), max(a, b)
            inserted = draw(alphabet)
            if draw(st.integers(0, 9)) == 0:
                batch.append((None, None, inserted))  # a whole-text change now and then
                text = inserted
            else:
                batch.append((start, end, inserted))
                text = text[:start] + inserted + text[end:]
        batches.append(batch)
    return initial, batches


def replay(initial: str, batches: list[list[tuple]], encoding: str) -> None:
    """Send the batches to a store as an editor would, checking sync after each one."""
    store = DocumentStore()
    store.open("file:///t.py", "python", 1, initial)
    editor = initial
    for version, batch in enumerate(batches, start=2):
        changes: list[tuple[str, tuple[int, int] | None, tuple[int, int] | None]] = []
        for start, end, inserted in batch:
            if start is None:
                changes.append((inserted, None, None))
                editor = inserted
            else:
                changes.append(
                    (inserted, position_of(editor, start, encoding), position_of(editor, end, encoding))
                )
                editor = editor[:start] + inserted + editor[end:]
        store.change("file:///t.py", version, changes, encoding)
        snapshot = store.snapshot("file:///t.py")
        assert snapshot.text == editor
        assert snapshot.version == version


# -- properties -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(edit_sessions(), st.sampled_from(ENCODINGS))
def test_incremental_edits_keep_the_copy_identical(session: tuple[str, list], encoding: str) -> None:
    replay(*session, encoding)


@settings(max_examples=80, deadline=None)
@given(edit_sessions(texts_with_surrogates), st.sampled_from(ENCODINGS))
def test_lone_surrogates_from_json_stay_in_step(session: tuple[str, list], encoding: str) -> None:
    replay(*session, encoding)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit_sessions())
def test_incremental_syntax_tree_matches_a_fresh_parse(session: tuple[str, list]) -> None:
    initial, batches = session
    spec = language_for_id("python")
    assert spec is not None
    document = Document("file:///t.py", "python", 1, initial)
    document.syntax_tree(1_000_000)  # start with a tree so that edits go through tree.edit
    editor = initial
    for batch in batches:
        for start, end, inserted in batch:
            if start is None:
                document.apply_change(inserted)
                editor = inserted
                continue
            document.apply_change(
                inserted, position_of(editor, start, UTF16), position_of(editor, end, UTF16), UTF16
            )
            editor = editor[:start] + inserted + editor[end:]
        tree = document.syntax_tree(1_000_000)
        fresh = syntax.parse(spec, editor.encode("utf-8", "surrogatepass"))
        assert tree is not None and str(tree.root_node) == str(fresh.root_node)


@settings(max_examples=500, deadline=None)
@given(
    texts_with_surrogates,
    st.integers(0, 4) | st.integers(0, 2**31 - 1),
    st.integers(0, 12) | st.integers(0, 2**31 - 1),
    st.sampled_from(ENCODINGS),
)
def test_any_position_is_clamped_as_lsp_says(text: str, line: int, character: int, encoding: str) -> None:
    document = Document("u", "python", 1, text)
    offset = document.offset_at(line, character, encoding)
    assert offset == clamped_offset(text, line, character, encoding)
    assert offset in valid_offsets(text)  # never between a CR and its LF
    # And back: the offset maps to a position that maps to the same offset.
    back = document.position_at(offset, encoding)
    assert back == position_of(text, offset, encoding)
    assert document.offset_at(*back, encoding) == offset


@settings(max_examples=200, deadline=None)
@given(
    texts,
    st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 40), st.integers(0, 12), st.integers(0, 40), texts),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(ENCODINGS),
)
def test_hostile_ranges_are_clamped_or_refused_never_half_applied(
    text: str, edits: list[tuple[int, int, int, int, str]], encoding: str
) -> None:
    """Ranges past line ends, past the document, inside characters or reversed: each
    change applies exactly as its clamped range says, or the store refuses it, keeps
    the text it had and marks the buffer out of step (completions are then refused)."""
    store = DocumentStore()
    store.open("u", "python", 1, text)
    editor = text
    for version, (l1, c1, l2, c2, inserted) in enumerate(edits, start=2):
        begin = clamped_offset(editor, l1, c1, encoding)
        finish = clamped_offset(editor, l2, c2, encoding)
        try:
            store.change("u", version, [(inserted, (l1, c1), (l2, c2))], encoding)
        except DocumentError:
            assert finish < begin  # refused only when the range is reversed
            state = store.state("u")
            assert state.out_of_sync is not None
            assert state.utf8_bytes == len(editor.encode("utf-8", "surrogatepass"))
            return
        editor = editor[:begin] + inserted + editor[finish:]
        assert store.snapshot("u").text == editor


def test_position_math_stays_fast_on_a_giant_minified_line() -> None:
    """5 MB on one line with multi-byte characters: a keystroke at its end must not
    cost a Python loop per character (it did: about a second per keystroke)."""
    import time

    line = ("var é=1;" * 650_000)[:5_000_000] + "😀"
    document = Document("u", "javascript", 1, line)
    end16 = len(line.encode("utf-16-le")) // 2
    started = time.perf_counter()
    for _ in range(5):
        assert document.offset_at(0, end16, UTF16) == len(line)
        assert document.offset_at(0, end16 - 1, UTF16) == len(line) - 1  # inside the emoji
        assert document.offset_at(0, 10**9, UTF8) == len(line)
    per_keystroke = (time.perf_counter() - started) / 5
    assert per_keystroke < 0.25, f"{per_keystroke:.3f}s per position lookup"
