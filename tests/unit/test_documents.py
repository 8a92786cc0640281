import pytest

from lsp_server import syntax
from lsp_server.documents import UTF8, UTF16, UTF32, Document, DocumentStore
from lsp_server.errors import DocumentError
from lsp_server.languages import language_for_id


def test_utf16_positions_with_surrogate_pairs() -> None:
    doc = Document("u", "python", 1, "a😀b\nc")
    assert doc.offset_at(0, 0) == 0
    assert doc.offset_at(0, 1) == 1  # before the emoji
    assert doc.offset_at(0, 2) == 1  # inside the surrogate pair: snaps to the start
    assert doc.offset_at(0, 3) == 2  # after the emoji
    assert doc.offset_at(0, 4) == 3
    assert doc.position_at(3) == (0, 4)
    assert doc.offset_at(0, 2, UTF32) == 2
    assert doc.offset_at(0, 5, UTF8) == 2  # 'a' + 4 bytes of emoji
    assert doc.position_at(2, UTF8) == (0, 5)


def test_line_endings_crlf_and_lone_cr() -> None:
    doc = Document("u", "python", 1, "one\r\ntwo\rthree\nfour")
    assert doc.line_count() == 4
    assert doc.offset_at(1, 0) == 5
    assert doc.offset_at(2, 0) == 9
    assert doc.offset_at(3, 2) == doc.text.index("four") + 2
    assert doc.offset_at(0, 99) == 3  # clamped to the end of the line, before CRLF
    assert doc.offset_at(99, 0) == len(doc.text)  # past the last line: end of document


def test_incremental_changes_and_full_replacement() -> None:
    doc = Document("u", "python", 1, "hello\nworld\n")
    doc.apply_change("HELLO", (0, 0), (0, 5))
    doc.apply_change("!", (1, 5), (1, 5))
    doc.apply_change("", (0, 5), (1, 0))
    assert doc.text == "HELLOworld!\n"
    doc.apply_change("fresh")
    assert doc.text == "fresh"


def test_reversed_range_is_refused_and_the_buffer_is_marked_out_of_step() -> None:
    store = DocumentStore()
    store.open("u", "python", 1, "abc\ndef\n")
    with pytest.raises(DocumentError, match="out of step"):
        store.change("u", 2, [("x", (0, 1), (0, 1)), ("y", (1, 2), (0, 0))], UTF16)
    state = store.state("u")
    assert state.out_of_sync is not None and state.utf8_bytes == len("abc\ndef\n")  # nothing half-applied
    # The editor applied what the server could not: refuse to complete on a stale copy...
    with pytest.raises(DocumentError, match="reopened"):
        store.snapshot("u")
    store.change("u", 3, [("z", (0, 0), (0, 0))], UTF16)  # ...ignore edits that cannot be trusted...
    assert store.state("u").out_of_sync is not None
    store.change("u", 4, [("fresh\n", None, None), ("!", (0, 5), (0, 5))], UTF16)  # ...until a full text
    assert store.snapshot("u").text == "fresh!\n" and store.state("u").version == 4


def test_a_lost_edit_is_recorded_and_a_reopen_clears_it() -> None:
    store = DocumentStore()
    store.open("u", "python", 1, "abc")
    assert store.mark_out_of_sync("u", "an edit could not be read")
    assert not store.mark_out_of_sync("never-opened", "x")
    with pytest.raises(DocumentError, match="could not be read"):
        store.get("u")
    store.open("u", "python", 5, "abc")
    assert store.snapshot("u").version == 5


def test_syntax_tree_follows_incremental_edits() -> None:
    doc = Document("u", "python", 1, "def f(x):\n    return x\n")
    spec = language_for_id("python")
    assert spec is not None
    tree = doc.syntax_tree(1_000_000)
    assert tree is not None
    edits = [
        ("y, ", (0, 6), (0, 6)),
        (" + y", (1, 12), (1, 12)),
        ("é😀", (1, 4), (1, 4)),
        ("", (1, 4), (1, 6)),
    ]
    for text, start, end in edits:
        doc.apply_change(text, start, end)
        incremental = doc.syntax_tree(1_000_000)
        fresh = syntax.parse(spec, doc.text.encode())
        assert incremental is not None
        assert str(incremental.root_node) == str(fresh.root_node)


def test_unknown_document() -> None:
    with pytest.raises(DocumentError, match="not open"):
        DocumentStore().snapshot("file:///nope")


def test_big_files_get_no_tree() -> None:
    doc = Document("u", "javascript", 1, "x=1;" * 1000)
    assert doc.syntax_tree(max_bytes=100) is None


def test_binary_files_get_no_tree() -> None:
    """tree-sitter's error recovery on megabytes of noise takes seconds per parse."""
    doc = Document("u", "python", 1, "x = 1\n\x00\x01\x02")
    assert doc.syntax_tree(max_bytes=1_000_000) is None
    doc.apply_change("x = 2\n")
    assert doc.syntax_tree(max_bytes=1_000_000) is not None
