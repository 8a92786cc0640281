"""Cross-file holes: the removed text uses a name that only another file of the repository defines.

A use counts when the name is a top-level definition of another file of the
same repository, is defined nowhere in the current file, and is used for the
first time at the hole: before the cursor it occurs only in import statements.
So the in-file prompt shows at most the name, never its parameters or fields;
the answer needs the other file. Three uses, read with tree-sitter:

* a bare name: `parse_header(value, strict=True)`, `Message`, `MAX_LINE`;
* an attribute of a repository module: `utils.quote(name)` where `utils.py` defines `quote`;
* (Go) a method of a type of the same package, from a sibling file: `w.writeHeader(code)`.

The hole is the rest of a single clean line, from its code (`line/...`) or
from the name (`midline/...`, after the dot for an attribute); the detail
also says whether the use is a call, an attribute or a name. The evaluation's
cross-file track and training's cross-file holes both cut them here.
"""

from __future__ import annotations

import builtins
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lsp_server import syntax
from lsp_server.corpora import PYTHON_EXCLUDE
from lsp_server.holes import Hole, HoleKind
from lsp_server.holes.parsed import ParsedFile
from lsp_server.holes.tokens import clean_lines
from lsp_server.languages import language_for_id, language_for_path
from lsp_server.project_index import IGNORED_DIRS
from lsp_server.symbols import read_symbols, supported

IDENTIFIER_KINDS = frozenset({"identifier", "field_identifier", "property_identifier", "type_identifier"})
IMPORT_KINDS = frozenset({"import_statement", "import_from_statement", "import_declaration"})
ATTRIBUTE_FIELDS = {"attribute": "attribute", "selector_expression": "field", "member_expression": "property"}
"""Attribute-access node -> the field that holds the accessed name."""
OBJECT_FIELDS = ("object", "operand")
CALL_KINDS = frozenset({"call", "call_expression", "new_expression"})
MIN_NAME_CHARS = 3
PARAMETER_KINDS = frozenset(
    {"parameters", "typed_parameter", "list_splat_pattern", "dictionary_splat_pattern"}
)
"""Python parameter nodes whose identifier is the parameter's own name (no `name` field)."""
_GO_PREDECLARED_NAMES = (
    "any append bool byte cap clear close comparable complex complex64 complex128 copy delete error false "
    "float32 float64 imag int int8 int16 int32 int64 iota len make max min new nil panic print println "
    "real recover rune string true uint uint8 uint16 uint32 uint64 uintptr"
)
GO_PREDECLARED = frozenset(_GO_PREDECLARED_NAMES.split(" "))
"""Names every Go file knows: a package redefining one (a build-tagged shim) does not own them."""
PREDEFINED = {"python": frozenset(dir(builtins)), "go": GO_PREDECLARED}
UNFINISHED_ENDINGS = ("(", "[", "{", ",", "\\")
"""A hole ending like this leaves the call's arguments to later lines: not a whole use."""


@dataclass(frozen=True)
class RepositorySymbols:
    """Who defines what in one repository."""

    defined_in: dict[str, frozenset[str]]
    """Top-level name -> paths of the files that define it."""
    modules: dict[str, str]
    """Module name as code refers to it (`utils` for utils.py, `email` for email/__init__.py) -> path."""


def symbols_under(root: Path, language: str) -> RepositorySymbols:
    """Who defines what among the files of `language` under `root` (a workspace)."""
    spec = language_for_id(language)
    defined: dict[str, set[str]] = {}
    modules: dict[str, str] = {}
    if spec is None or not supported(spec):
        return RepositorySymbols({}, modules)
    for path in definition_files(root, language):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for definition in read_symbols(spec, str(path), data).definitions:
            defined.setdefault(definition.name, set()).add(str(path))
        stem = path.parent.name if path.stem in ("__init__", "index") else path.stem
        modules.setdefault(stem, str(path))
    return RepositorySymbols({k: frozenset(v) for k, v in defined.items()}, modules)


def definition_files(root: Path, language: str) -> list[Path]:
    """Every file of the language, small ones too (holes skip those, definitions not);
    Go tests aside."""
    found: list[Path] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in IGNORED_DIRS and d not in PYTHON_EXCLUDE)
        for name in sorted(names):
            spec = language_for_path(name)
            if spec is not None and spec.id == language and not name.endswith("_test.go"):
                found.append(Path(directory) / name)
    return found


@dataclass(frozen=True)
class Use:
    """One first use of another file's name."""

    name: str
    start: int
    """Character offset of the name itself (`utils.|quote`: after the dot, where an editor
    completes a member)."""
    usage: str
    """call, attribute or name."""
    defined_in: str


def _text(node: syntax.Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _same(a: syntax.Node | None, b: syntax.Node) -> bool:
    return a is not None and a.start_byte == b.start_byte and a.end_byte == b.end_byte


def _local_names(file: ParsedFile, path: str) -> set[str]:
    """Every name the file itself defines, at any depth, plus its top-level definitions."""
    names = {d.name for d in read_symbols(file.spec, path, file.text.encode("utf-8")).definitions}
    stack = [file.tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in file.spec.definition_kinds or node.type.endswith(("_declaration", "_definition")):
            name = node.child_by_field_name("name")
            if name is not None:
                names.add(_text(name))
        stack.extend(node.children)
    return names


def _import_names(file: ParsedFile) -> set[str]:
    """Names bound by Go imports (`strings`, an alias): a selector on them is another package."""
    names: set[str] = set()
    if file.spec.id != "go":
        return names
    for node in syntax.captures(file.spec, file.tree.root_node, "(import_spec) @spec").get("spec", []):
        alias = node.child_by_field_name("name")
        target = node.child_by_field_name("path")
        if alias is not None:
            names.add(_text(alias))
        elif target is not None:
            names.add(_text(target).strip('"').rsplit("/", 1)[-1])
    return names


def find_uses(file: ParsedFile, path: str, symbols: RepositorySymbols) -> list[Use]:
    """First uses in the file of names that only other files of the repository define."""
    local = _local_names(file, path)
    go_imports = _import_names(file)
    seen: set[str] = set()
    uses: list[Use] = []
    atomic = file.spec.string_kinds | file.spec.comment_kinds
    for leaf in syntax.leaves(file.tree.root_node, atomic):
        if leaf.type not in IDENTIFIER_KINDS:
            continue
        name = _text(leaf)
        if any(a.type in IMPORT_KINDS for a in syntax.ancestors(leaf)):
            continue
        first = name not in seen
        seen.add(name)
        if not first or name in local or len(name) < MIN_NAME_CHARS or name.startswith("__"):
            continue
        if name in PREDEFINED.get(file.spec.id, ()):
            continue
        use = _classify(file, leaf, name, path, symbols, go_imports)
        if use is not None:
            uses.append(use)
    return uses


def _classify(
    file: ParsedFile,
    leaf: syntax.Node,
    name: str,
    path: str,
    symbols: RepositorySymbols,
    go_imports: set[str],
) -> Use | None:
    parent = leaf.parent
    if parent is None:
        return None
    if _same(parent.child_by_field_name("name"), leaf) or _same(parent.child_by_field_name("left"), leaf):
        return None  # a keyword argument, a declaration, an assignment target
    if parent.type in PARAMETER_KINDS or _same(parent.child_by_field_name("pattern"), leaf):
        return None  # a parameter (Python's have no name field, TypeScript's a pattern)
    others = sorted(p for p in symbols.defined_in.get(name, ()) if p != path)
    if file.spec.id == "go":  # a Go file sees its own package's names: the files of its directory
        others = [p for p in others if Path(p).parent == Path(path).parent]
    if not others:
        return None
    expression = leaf
    field = ATTRIBUTE_FIELDS.get(parent.type)
    if field is not None and _same(parent.child_by_field_name(field), leaf):
        target = next(
            (parent.child_by_field_name(f) for f in OBJECT_FIELDS if parent.child_by_field_name(f)), None
        )
        if target is None or target.type != "identifier":
            return None
        owner = _text(target)
        if file.spec.id == "go":
            if owner in go_imports:
                return None  # another package's name
        elif symbols.modules.get(owner) not in others:
            return None  # an attribute of something that is not the module defining the name
        else:
            others = [symbols.modules[owner]]
        expression = parent
        usage = "attribute"
    else:
        usage = "name"
    outer = expression.parent
    if (
        outer is not None
        and outer.type in CALL_KINDS
        and _same(outer.child_by_field_name("function"), expression)
    ):
        usage = "call"
    elif (
        outer is not None
        and outer.type in CALL_KINDS
        and _same(outer.child_by_field_name("constructor"), expression)
    ):
        usage = "call"
    return Use(name, file.char(leaf.start_byte), usage, others[0])


def crossfile_holes(file: ParsedFile, uses: Sequence[Use], chooser: random.Random) -> list[tuple[Hole, Use]]:
    """One hole per clean line that has a use: the line's code, or the rest from the use."""
    by_line: dict[int, Use] = {}
    for use in uses:
        by_line.setdefault(file.line_of(use.start), use)
    clean = clean_lines(file)
    holes: list[tuple[Hole, Use]] = []
    for line, use in sorted(by_line.items()):
        tokens = clean.get(line)
        if tokens is None:
            continue
        code_start, end = tokens[0][0], file.line_end(line)
        if file.text[code_start:end].rstrip().endswith(UNFINISHED_ENDINGS):
            continue
        midline = use.start > code_start and chooser.random() < 0.5
        start = use.start if midline else code_start
        detail = f"{'midline' if midline else 'line'}/{use.usage}"
        holes.append((Hole(start, end, HoleKind.CROSSFILE, detail), use))
    return holes
