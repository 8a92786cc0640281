"""Where the cursor sits in the syntax: the node that will hold the completion.

The file is parsed again with a probe at the cursor, a call
(`__inkling__();` as a statement, `__inkling__()` as an expression: each
language's rules list what to try): the grammar places it where the completion will go, in a body,
an argument list, a collection literal, the right side of an assignment, a
decorator, without guessing from the text of the line, and without the
error recovery an unfinished file would need (a Python `def f():` with
nothing under it does not parse; with the probe it does). The first
ancestor of the probe that a language's rules (`languages.SyntaxRules`)
name is the container; whether it holds anything besides the probe (comments
and a docstring do not count) says whether a whole body is wanted. Where the
probe's container has a syntax error (error recovery put it there), the
placement is not trusted and the text rules decide.

The same container then says where a completion ends (`EnclosingEnd`): the
completion is put in place of the probe, the tree updated incrementally, and
the container's end read off it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lsp_server import syntax
from lsp_server.languages import LanguageSpec, SyntaxRules


class Slot(enum.StrEnum):
    BODY = "body"
    """Statements or members of a function, class, loop, branch, closure or `case` arm."""
    ARGUMENTS = "arguments"
    COLLECTION = "collection"
    EXPRESSION = "expression"
    """The right side of an assignment, a `return`, a default value."""
    DECORATOR = "decorator"
    OTHER = "other"


@dataclass(frozen=True)
class Placement:
    slot: Slot
    container: str
    """The container's node kind (`block` of a `function_definition`: "function_definition")."""
    empty: bool
    """The container holds nothing but the probe (comments and a docstring aside)."""
    start_byte: int
    """The container's start (before the cursor, so the same in any later tree)."""
    kind: str
    """The container's own node kind (found again by kind and start in a later tree)."""
    opener_row: int
    """The line that opens it (`def f():`, `x = [`): a body ends at a line indented no deeper."""

    @property
    def describes(self) -> str:
        state = "empty " if self.empty else ""
        return f"{state}{self.slot.value} of {self.container}"


def place(spec: LanguageSpec, text: str, offset: int, tree: syntax.Tree | None = None) -> Placement | None:
    """The container at `offset` (a str index), or None where no probe finds one in a
    tree without errors (then the text rules decide)."""
    rules = spec.syntax
    if rules is None:
        return None
    for probe in rules.probes:
        probed, cursor = _probed_tree(spec, text, offset, tree, probe)
        found = _container(spec, rules, probed, cursor, len(probe))
        if found is not None:
            return found
    return None


def _container(
    spec: LanguageSpec, rules: SyntaxRules, probed: syntax.Tree, cursor: int, width: int
) -> Placement | None:
    node = syntax.node_at(probed, cursor + 1)
    probe: syntax.Node | None = None
    for ancestor in syntax.ancestors(node):
        if _slot_of(rules, ancestor.type) is not None:
            break  # a body that holds the probe alone is still the probe's container
        if ancestor.start_byte == cursor and ancestor.end_byte == cursor + width:
            probe = ancestor  # the outermost node that is the probe alone (the statement)
        elif probe is not None:
            break
    if probe is None:
        return None
    held: syntax.Node = probe
    outer: syntax.Node | None = probe.parent
    while outer is not None:
        if outer.is_error:
            return None
        slot = _slot_of(rules, outer.type)
        if slot is not None:
            owner = _owner(outer, rules)
            if outer.has_error or owner.is_error:
                return None  # error recovery placed the probe: not to be trusted
            return Placement(
                slot=slot,
                container=owner.type if slot is Slot.BODY else outer.type,
                empty=_holds_only(outer, held, rules, spec),
                start_byte=outer.start_byte,
                kind=outer.type,
                opener_row=owner.start_point[0] if slot is Slot.BODY else outer.start_point[0],
            )
        held, outer = outer, outer.parent
    return None


def _owner(container: syntax.Node, rules: SyntaxRules) -> syntax.Node:
    """What the container belongs to: the function of a body, skipping bodies in bodies
    (Go's statement list in a block) and arms' own kinds."""
    if container.type in rules.labelled:
        return container
    owner = container.parent or container
    while owner.type in rules.bodies and owner.parent is not None:
        owner = owner.parent
    return owner


def _slot_of(rules: SyntaxRules, kind: str) -> Slot | None:
    for slot, kinds in (
        (Slot.BODY, rules.bodies),
        (Slot.ARGUMENTS, rules.arguments),
        (Slot.COLLECTION, rules.collections),
        (Slot.EXPRESSION, rules.expressions),
        (Slot.DECORATOR, rules.decorators),
    ):
        if kind in kinds:
            return slot
    return None


def _holds_only(container: syntax.Node, held: syntax.Node, rules: SyntaxRules, spec: LanguageSpec) -> bool:
    """Whether `container` has no named child but `held` (the probe's statement), comments, a
    leading docstring and, in a `case` arm, the labels before it."""
    children = container.named_children
    for index, child in enumerate(children):
        if child.id == held.id or child.type in spec.comment_kinds:
            continue
        if child.end_byte <= held.start_byte and container.type in rules.labelled:
            continue  # `case 1:` labels come before the statements
        if index == 0 and _is_docstring(child, spec):
            continue
        return False
    return True


def _is_docstring(node: syntax.Node, spec: LanguageSpec) -> bool:
    if not spec.indent_blocks or node.type != "expression_statement" or node.named_child_count != 1:
        return False
    only = node.named_children[0]
    return only.type in spec.string_kinds


def _probed_tree(
    spec: LanguageSpec, text: str, offset: int, tree: syntax.Tree | None, probe: str
) -> tuple[syntax.Tree, int]:
    """The tree of `text` with the probe at `offset`, and the probe's byte offset; updated
    incrementally from `tree` (the text's own tree) when there is one."""
    before = text[:offset].encode("utf-8", "surrogatepass")
    after = text[offset:].encode("utf-8", "surrogatepass")
    source = before + probe.encode() + after
    cursor = len(before)
    if tree is None:
        return syntax.parse(spec, source), cursor
    edited = tree.copy()
    point = _point(before)
    syntax.edit_tree(
        edited, cursor, cursor, cursor + len(probe), point, point, (point[0], point[1] + len(probe))
    )
    return syntax.parse(spec, source, edited), cursor


def _point(data: bytes) -> tuple[int, int]:
    """(row, byte column) of the end of `data`."""
    row = data.count(b"\n")
    return row, len(data) - (data.rfind(b"\n") + 1)


class EnclosingEnd:
    """Where a completion leaves the container it started in, read from the tree of the
    file with the completion in place of the probe (updated incrementally, once per
    complete line: the end of a body is decided at line starts)."""

    def __init__(
        self,
        spec: LanguageSpec,
        text: str,
        offset: int,
        placement: Placement,
        tree: syntax.Tree | None = None,
    ) -> None:
        self._spec = spec
        self._base = tree
        self._placement = placement
        self._before = text[:offset].encode("utf-8", "surrogatepass")
        self._after = text[offset:].encode("utf-8", "surrogatepass")
        self._tree: syntax.Tree | None = None
        self._inserted = b""
        self._checked: tuple[int, int | None] = (-1, None)

    def cut(self, completion: str) -> int | None:
        """Where `completion` (its complete lines) goes past the container's end, as a str
        index into it; None while it stays inside (or the tree cannot tell: errors)."""
        lines_end = completion.rfind("\n") + 1
        if lines_end == 0:
            return None
        if self._checked[0] == lines_end:
            return self._checked[1]
        found = self._cut(completion[:lines_end])
        self._checked = (lines_end, found)
        return found

    def _cut(self, complete: str) -> int | None:
        inserted = complete.encode("utf-8", "surrogatepass")
        tree = self._update(inserted)
        cursor = len(self._before)
        container = self._find(tree, cursor)
        if container is None or container.has_error:
            return None
        interior_end = container.end_byte
        last = container.children[-1] if container.children else None
        if last is not None and not last.is_named and last.type in (")", "]", "}"):
            interior_end = last.start_byte
        if interior_end >= cursor + len(inserted):
            return None
        start = complete.find("\n") + 1  # the cursor's own line is the container's by definition
        while start < len(complete):
            end = complete.find("\n", start)
            line = complete[start:end]
            code = len(line) - len(line.lstrip())
            if (
                line.strip()
                and cursor + len(complete[: start + code].encode("utf-8", "surrogatepass")) >= interior_end
            ):
                return start
            start = end + 1
        return None

    def _update(self, inserted: bytes) -> syntax.Tree:
        source = self._before + inserted + self._after
        cursor = len(self._before)
        if self._tree is None and self._base is not None:
            self._tree, self._inserted = self._base.copy(), b""  # the text's own tree, updated
        if self._tree is None or not inserted.startswith(self._inserted):
            self._tree = syntax.parse(self._spec, source)
        else:
            start = cursor + len(self._inserted)
            added = inserted[len(self._inserted) :]
            point = _point(self._before + self._inserted)
            new_point = _point(self._before + inserted)
            syntax.edit_tree(self._tree, start, start, start + len(added), point, point, new_point)
            self._tree = syntax.parse(self._spec, source, self._tree)
        self._inserted = inserted
        return self._tree

    def _find(self, tree: syntax.Tree, cursor: int) -> syntax.Node | None:
        node = syntax.node_at(tree, cursor)
        for ancestor in syntax.ancestors(node):
            if ancestor.type == self._placement.kind and ancestor.start_byte == self._placement.start_byte:
                return ancestor
        return None
