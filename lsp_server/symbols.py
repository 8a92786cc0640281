"""What a source file defines and imports, read with tree-sitter queries (pure).

A definition is kept as a compact signature (a function's header and the
first line of its docstring; a class's header and its members' headers),
which is what a completion needs from another file: the names, the
parameters, the fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_server import syntax
from lsp_server.languages import LanguageSpec

# One query per language: definitions capture @name plus their node as
# @function, @class, @type or @variable; imports capture @module.
_QUERIES: dict[str, str] = {
    "python": """
(module (function_definition name: (identifier) @name) @function)
(module (decorated_definition definition: (function_definition name: (identifier) @name)) @function)
(module (class_definition name: (identifier) @name) @class)
(module (decorated_definition definition: (class_definition name: (identifier) @name)) @class)
(module (expression_statement (assignment left: (identifier) @name)) @variable)
(import_statement name: (dotted_name) @module)
(import_statement name: (aliased_import name: (dotted_name) @module))
(import_from_statement module_name: (_) @module)
(import_from_statement module_name: (_) @from name: (dotted_name) @imported)
(import_from_statement module_name: (_) @from name: (aliased_import name: (dotted_name) @imported))
""",
    "javascript": """
(program (function_declaration name: (identifier) @name) @function)
(program (class_declaration name: (identifier) @name) @class)
(program (export_statement declaration: (function_declaration name: (identifier) @name)) @function)
(program (export_statement declaration: (class_declaration name: (identifier) @name)) @class)
(program (lexical_declaration (variable_declarator name: (identifier) @name)) @variable)
(program (export_statement declaration: (lexical_declaration (variable_declarator name: (identifier) @name))) @variable)
(import_statement source: (string (string_fragment) @module))
(import_specifier name: (identifier) @imported)
""",
    "typescript": """
(program (function_declaration name: (identifier) @name) @function)
(program (class_declaration name: (type_identifier) @name) @class)
(program (interface_declaration name: (type_identifier) @name) @type)
(program (type_alias_declaration name: (type_identifier) @name) @type)
(program (export_statement declaration: (function_declaration name: (identifier) @name)) @function)
(program (export_statement declaration: (class_declaration name: (type_identifier) @name)) @class)
(program (export_statement declaration: (interface_declaration name: (type_identifier) @name)) @type)
(program (export_statement declaration: (type_alias_declaration name: (type_identifier) @name)) @type)
(program (lexical_declaration (variable_declarator name: (identifier) @name)) @variable)
(program (export_statement declaration: (lexical_declaration (variable_declarator name: (identifier) @name))) @variable)
(import_statement source: (string (string_fragment) @module))
(import_specifier name: (identifier) @imported)
""",
    "go": """
(source_file (function_declaration name: (identifier) @name) @function)
(source_file (method_declaration name: (field_identifier) @name) @function)
(source_file (type_declaration (type_spec name: (type_identifier) @name)) @class)
(import_spec path: (interpreted_string_literal) @module)
""",
    "rust": """
(source_file (function_item name: (identifier) @name) @function)
(source_file (struct_item name: (type_identifier) @name) @class)
(source_file (enum_item name: (type_identifier) @name) @class)
(source_file (trait_item name: (type_identifier) @name) @class)
(source_file (impl_item type: (type_identifier) @name) @class)
(source_file (mod_item name: (identifier) @module) @mod)
(use_declaration argument: (_) @module)
""",
    "java": """
(program (class_declaration name: (identifier) @name) @class)
(program (interface_declaration name: (identifier) @name) @class)
(program (enum_declaration name: (identifier) @name) @class)
(import_declaration (scoped_identifier) @module)
""",
    "c": """
(translation_unit (function_definition declarator: (function_declarator declarator: (identifier) @name)) @function)
(translation_unit (declaration declarator: (function_declarator declarator: (identifier) @name)) @function)
(translation_unit (struct_specifier name: (type_identifier) @name body: (_)) @class)
(translation_unit (type_definition declarator: (type_identifier) @name) @type)
(preproc_include path: (string_literal) @module)
""",
    "cpp": """
(translation_unit (function_definition declarator: (function_declarator declarator: (identifier) @name)) @function)
(translation_unit (declaration declarator: (function_declarator declarator: (identifier) @name)) @function)
(translation_unit (class_specifier name: (type_identifier) @name body: (_)) @class)
(translation_unit (struct_specifier name: (type_identifier) @name body: (_)) @class)
(translation_unit (type_definition declarator: (type_identifier) @name) @type)
(preproc_include path: (string_literal) @module)
""",
}
_QUERIES["tsx"] = _QUERIES["typescript"]

_KINDS = ("function", "class", "type", "variable")
_MEMBER_KINDS = frozenset(
    {
        "function_definition",
        "decorated_definition",
        "method_definition",
        "method_declaration",
        "constructor_declaration",
        "function_item",
        "field_declaration",
        "public_field_definition",
        "property_signature",
        "method_signature",
        "field_definition",
    }
)
MAX_SIGNATURE_LINES = 24
MAX_VARIABLE_CHARS = 160


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str
    path: str
    line: int
    signature: str


@dataclass(frozen=True)
class FileSymbols:
    path: str
    language: str
    definitions: tuple[Definition, ...]
    imports: tuple[str, ...]
    """Module specifiers as written (quotes removed): 'os.path', './util', "x.h"; for Python's
    `from m import a` also 'm.a', in case `a` is a submodule (`from . import events` -> '.events')."""
    imported_names: tuple[str, ...] = ()
    """Names imported one by one (`from m import a`, `import { a } from './m'`): what the file will use."""


def supported(spec: LanguageSpec) -> bool:
    return spec.id in _QUERIES


def read_symbols(spec: LanguageSpec, path: str, source: bytes) -> FileSymbols:
    tree = syntax.parse(spec, source)
    definitions: list[Definition] = []
    imports: list[str] = []
    imported: list[str] = []
    for _, captures in syntax.matches(spec, _QUERIES[spec.id], tree.root_node):
        for module in captures.get("module", []):
            imports.append(_text(module).strip("\"'<>"))
        for name in captures.get("imported", []):
            imported.append(_text(name))
            for module in captures.get("from", []):
                prefix = _text(module)
                imports.append(prefix + _text(name) if prefix.strip(".") == "" else f"{prefix}.{_text(name)}")
        names = captures.get("name", [])
        kind = next((k for k in _KINDS if k in captures), None)
        if not names or kind is None:
            continue
        node = captures[kind][0]
        definitions.append(
            Definition(
                name=_text(names[0]),
                kind=kind,
                path=path,
                line=node.start_point[0],
                signature=_signature(spec, node, kind),
            )
        )
    return FileSymbols(
        path, spec.id, tuple(definitions), tuple(dict.fromkeys(imports)), tuple(dict.fromkeys(imported))
    )


def _text(node: syntax.Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _signature(spec: LanguageSpec, node: syntax.Node, kind: str) -> str:
    if kind in {"variable", "type"}:
        text = _text(node)
        return text if len(text) <= MAX_VARIABLE_CHARS else text[:MAX_VARIABLE_CHARS] + " ..."
    definition = _unwrap(node)
    body = definition.child_by_field_name("body")
    if body is None:
        return _text(node)  # a prototype (C header) or a declaration without body
    header = _between(node, node.start_byte, body.start_byte).rstrip()
    lines = [header + (":" if spec.indent_blocks and not header.endswith(":") else "")]
    docstring = _docstring(body) if spec.indent_blocks else None
    indent = " " * (4 if spec.indent_blocks else 2)
    if docstring:
        lines.append(indent + docstring)
    if kind == "class":
        for member in body.named_children:
            if member.type in _MEMBER_KINDS:
                inner = _unwrap(member)
                lines.append(indent + _header(inner))
                lines.extend(indent + attr for attr in _instance_attributes(inner))
            elif _is_field(spec, member):
                lines.append(indent + _text(member).splitlines()[0].strip())
            if len(lines) >= MAX_SIGNATURE_LINES:
                lines.append(indent + "...")
                break
    if spec.indent_blocks:
        if len(lines) == 1:
            lines.append(indent + "...")
    else:
        lines[0] += " {" if not lines[0].endswith("{") else ""
        if len(lines) == 1:
            lines[0] += " ... }"
        else:
            lines.append("}")
    return "\n".join(lines)


def _is_field(spec: LanguageSpec, member: syntax.Node) -> bool:
    """A Python class-level assignment or annotation (not the docstring)."""
    return (
        spec.indent_blocks
        and member.type == "expression_statement"
        and bool(member.named_children)
        and member.named_children[0].type != "string"
    )


def _header(definition: syntax.Node) -> str:
    """The first line of a definition, up to its body (a method's signature)."""
    body = definition.child_by_field_name("body")
    text = _between(definition, definition.start_byte, body.start_byte) if body else _text(definition)
    return " ".join(text.split()) if "\n" in text.strip() else text.strip()


def _instance_attributes(method: syntax.Node) -> list[str]:
    """`self.x = ...` targets of a Python __init__: the fields other code reads."""
    name = method.child_by_field_name("name")
    body = method.child_by_field_name("body")
    if name is None or body is None or _text(name) != "__init__":
        return []
    found: list[str] = []
    for statement in body.named_children:
        if statement.type != "expression_statement" or not statement.named_children:
            continue
        assignment = statement.named_children[0]
        target = assignment.child_by_field_name("left") if assignment.type == "assignment" else None
        if target is not None and target.type == "attribute" and _text(target).startswith("self."):
            found.append(f"    {_text(target)}")
    return list(dict.fromkeys(found))


def _unwrap(node: syntax.Node) -> syntax.Node:
    """The definition inside decorators or an export statement."""
    inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
    return inner if inner is not None else node


def _between(node: syntax.Node, start: int, end: int) -> str:
    source = node.text or b""
    return source[: end - start].decode("utf-8", "replace")


def _docstring(body: syntax.Node) -> str | None:
    first = body.named_children[0] if body.named_children else None
    if first is None or first.type != "expression_statement" or not first.named_children:
        return None
    string = first.named_children[0]
    if string.type != "string":
        return None
    text = _text(string).strip().strip("\"'rbuf").strip()
    line = text.splitlines()[0].strip() if text else ""
    return f'"""{line}"""' if line else None
