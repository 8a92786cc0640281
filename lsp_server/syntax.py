"""tree-sitter behind one door: grammars, parsing, and questions about nodes.

Grammars come from the official per-language wheels installed with Inkling,
so nothing is downloaded at run time. This is the only module that imports
`tree_sitter`; the rest of the server sees `Tree` and `Node` through it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import TypeAlias

import tree_sitter

from lsp_server.errors import InklingError
from lsp_server.languages import LANGUAGES, LanguageSpec

Tree: TypeAlias = tree_sitter.Tree
Node: TypeAlias = tree_sitter.Node

_grammars: dict[str, tree_sitter.Language] = {}
_grammar_lock = threading.Lock()
_queries: dict[tuple[str, str], tree_sitter.Query] = {}


class GrammarError(InklingError):
    """A grammar package is missing or incompatible with the installed tree-sitter."""


def grammar(spec: LanguageSpec) -> tree_sitter.Language:
    """The tree-sitter Language for a spec, loaded once from its wheel."""
    with _grammar_lock:
        cached = _grammars.get(spec.id)
        if cached is not None:
            return cached
        try:
            module = importlib.import_module(spec.grammar_module)
            language = tree_sitter.Language(getattr(module, spec.grammar_function)())
        except (ImportError, AttributeError, ValueError) as exc:
            raise GrammarError(
                f"the {spec.id} grammar ({spec.grammar_module}) cannot be loaded: {exc}"
            ) from exc
        _grammars[spec.id] = language
        return language


def available_grammars() -> dict[str, str | None]:
    """Language id -> None when the grammar loads, else the reason it does not."""
    report: dict[str, str | None] = {}
    for spec in LANGUAGES:
        try:
            grammar(spec)
            report[spec.id] = None
        except GrammarError as exc:
            report[spec.id] = str(exc)
    return report


def parse(spec: LanguageSpec, source: bytes, old_tree: Tree | None = None) -> Tree:
    """Parse (incrementally when `old_tree` was edited in step with `source`)."""
    parser = tree_sitter.Parser(grammar(spec))
    if old_tree is None:
        return parser.parse(source)
    return parser.parse(source, old_tree)


def edit_tree(
    tree: Tree,
    start_byte: int,
    old_end_byte: int,
    new_end_byte: int,
    start_point: tuple[int, int],
    old_end_point: tuple[int, int],
    new_end_point: tuple[int, int],
) -> None:
    tree.edit(
        start_byte=start_byte,
        old_end_byte=old_end_byte,
        new_end_byte=new_end_byte,
        start_point=tree_sitter.Point(*start_point),
        old_end_point=tree_sitter.Point(*old_end_point),
        new_end_point=tree_sitter.Point(*new_end_point),
    )


def node_at(tree: Tree, byte_offset: int) -> Node:
    """The smallest node that contains the byte just before or at the cursor."""
    root = tree.root_node
    offset = max(0, min(byte_offset, root.end_byte))
    node = root.descendant_for_byte_range(offset, offset)
    return node if node is not None else root


def ancestors(node: Node) -> Iterator[Node]:
    current: Node | None = node
    while current is not None:
        yield current
        current = current.parent


def query(spec: LanguageSpec, source: str) -> tree_sitter.Query:
    """A compiled query, cached; raises GrammarError if it does not fit the grammar."""
    key = (spec.id, source)
    with _grammar_lock:
        cached = _queries.get(key)
    if cached is not None:
        return cached
    try:
        compiled = tree_sitter.Query(grammar(spec), source)
    except (tree_sitter.QueryError, ValueError) as exc:
        raise GrammarError(f"a {spec.id} query does not fit its grammar: {exc}") from exc
    with _grammar_lock:
        _queries[key] = compiled
    return compiled


def matches(spec: LanguageSpec, source: str, node: Node) -> list[tuple[int, dict[str, list[Node]]]]:
    """All matches of a query under `node`: (pattern index, capture name -> nodes)."""
    cursor = tree_sitter.QueryCursor(query(spec, source))
    return [(index, captures) for index, captures in cursor.matches(node)]


def error_count(node: Node, from_byte: int = 0) -> int:
    """ERROR and MISSING nodes under `node` that end at or after `from_byte`, visiting only
    subtrees that have them."""
    count = 0
    stack = [node]
    while stack:  # iterative: deeply nested code must not hit the recursion limit
        current = stack.pop()
        if not current.has_error or current.end_byte < from_byte:
            continue
        if current.is_error or current.is_missing:
            count += 1
        stack.extend(current.children)
    return count


def error_count_in(spec: LanguageSpec, source: bytes) -> int:
    return error_count(parse(spec, source).root_node)


def captures(spec: LanguageSpec, node: Node, query_source: str) -> dict[str, list[Node]]:
    """Nodes captured by a tree-sitter query, by capture name (queries compiled once)."""
    return tree_sitter.QueryCursor(query(spec, query_source)).captures(node)


def leaves(node: Node, atomic: frozenset[str] = frozenset()) -> Iterator[Node]:
    """The tokens under `node`, in order; nodes of an `atomic` kind (strings, say)
    count as one token. Zero-width (MISSING) nodes are skipped."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.child_count == 0 or current.type in atomic:
            if current.end_byte > current.start_byte:
                yield current
            continue
        stack.extend(reversed(current.children))
