"""The pipeline's parse check: an incremental reparse counts the same errors as a full parse."""

from __future__ import annotations

import pytest

from lsp_server import syntax
from lsp_server.context import build_context
from lsp_server.languages import language_for_id
from lsp_server.pipeline import _ParseCheck

FILES = {
    "python": "import os\n\n\ndef area(w, h):\n    |\n\n\nclass Shape:\n    def name(self) -> str:\n        return 'é'\n",
    "javascript": "function area(w, h) {\n  |\n}\n\nconst x = [1, 2];\n",
    "c": "#include <stdio.h>\n\nint area(int w, int h) {\n    |\n}\n\nint main(void) { return 0; }\n",
    "go": "package main\n\nfunc area(w, h int) int {\n\t|\n}\n\nfunc main() {}\n",
}
CANDIDATES = [
    "",
    "return w * h",
    "return w * h;",
    "return (w * h",
    "if w > 0:\n        return w\n    return h",
    "if (w > 0) {\n    return w;\n  }\n  return h;",
    "x = 'üñí' + \"\\u00e9\"  # 😀",
    "}}}",
    "\n\n\n",
    "return w *",
]


@pytest.mark.parametrize("language_id", sorted(FILES))
def test_incremental_counts_equal_full_parse_counts(language_id: str) -> None:
    spec = language_for_id(language_id)
    assert spec is not None
    source = FILES[language_id]
    offset = source.index("|")
    text = source.replace("|", "")
    tree = syntax.parse(spec, text.encode())
    context = build_context(text, offset, spec, tree)
    check = _ParseCheck(spec, context, tree)
    assert check.baseline == syntax.error_count_in(spec, text.encode())
    for candidate in CANDIDATES:
        full = syntax.error_count_in(spec, (text[:offset] + candidate + text[offset:]).encode())
        assert check(candidate) == full, (language_id, candidate)
        full_tree = syntax.parse(spec, (text[:offset] + candidate + text[offset:]).encode())
        late = syntax.error_count(full_tree.root_node, from_byte=len(text[:offset].encode()))
        assert check.errors_from_cursor(candidate) == late <= full, (language_id, candidate)
    assert syntax.error_count(tree.root_node) == check.baseline  # the document's own tree is untouched
