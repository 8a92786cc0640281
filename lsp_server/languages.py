"""The languages Inkling knows: ids, file extensions, grammars and node kinds.

Pure data. `syntax.py` loads the grammars; `context.py` and `postprocess.py`
read the node kinds to decide modes and stops. A language that is not listed
here still completes, line-wise, without syntax.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class SyntaxRules:
    """Node kinds that hold a completion (`placement.py`): the one table a contributor
    extends to teach Inkling a language's bodies, brackets and expressions. The first
    ancestor of the cursor of a kind named here is the completion's container."""

    bodies: frozenset[str]
    """Statements or members: a function's, class's, loop's, branch's, closure's, arm's."""
    arguments: frozenset[str] = frozenset()
    collections: frozenset[str] = frozenset()
    """List, dictionary, array, object and initializer literals."""
    expressions: frozenset[str] = frozenset()
    """Statements whose right side is an expression: assignments, `return`, defaults."""
    decorators: frozenset[str] = frozenset()
    labelled: frozenset[str] = frozenset()
    """Bodies whose labels are among their children (`case 1:` in C): not statements."""
    probes: tuple[str, ...] = ("__inkling__();", "__inkling__()")
    """Texts put at the cursor to find its container, tried in order: a statement, then
    an expression (a bracket's element); the first that parses without errors there wins."""


@dataclass(frozen=True)
class LanguageSpec:
    """What Inkling needs to know about one language."""

    id: str
    lsp_ids: tuple[str, ...]
    extensions: tuple[str, ...]
    grammar_module: str
    grammar_function: str
    line_comment: str
    indent_blocks: bool
    """True where indentation closes a block (Python); else braces do."""
    string_kinds: frozenset[str]
    comment_kinds: frozenset[str]
    body_kinds: frozenset[str]
    """Nodes that hold a block of statements or members."""
    definition_kinds: frozenset[str]
    """Top-level and member definitions: the start of the next one ends a block."""
    syntax: SyntaxRules | None = None
    """Where completions go (None: the text rules of `context.py` alone)."""


_C_FAMILY_STRINGS = frozenset({"string_literal", "raw_string_literal", "char_literal", "system_lib_string"})

_JS_SYNTAX = SyntaxRules(
    bodies=frozenset({"statement_block", "class_body", "switch_case", "switch_default"}),
    arguments=frozenset({"arguments"}),
    collections=frozenset({"array", "object"}),
    expressions=frozenset(
        {
            "variable_declarator",
            "assignment_expression",
            "return_statement",
            "pair",
            "public_field_definition",
        }
    ),
    decorators=frozenset({"decorator"}),
    labelled=frozenset({"switch_case"}),
)
_C_SYNTAX = SyntaxRules(
    bodies=frozenset({"compound_statement", "case_statement", "field_declaration_list"}),
    arguments=frozenset({"argument_list"}),
    collections=frozenset({"initializer_list"}),
    expressions=frozenset({"init_declarator", "assignment_expression", "return_statement"}),
    labelled=frozenset({"case_statement"}),
)

LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        id="python",
        lsp_ids=("python",),
        extensions=(".py", ".pyi"),
        grammar_module="tree_sitter_python",
        grammar_function="language",
        line_comment="#",
        indent_blocks=True,
        string_kinds=frozenset({"string", "string_content", "concatenated_string"}),
        comment_kinds=frozenset({"comment"}),
        body_kinds=frozenset({"block"}),
        definition_kinds=frozenset({"function_definition", "class_definition", "decorated_definition"}),
        syntax=SyntaxRules(
            bodies=frozenset({"block"}),
            arguments=frozenset({"argument_list"}),
            collections=frozenset({"list", "dictionary", "set", "tuple"}),
            expressions=frozenset(
                {
                    "assignment",
                    "augmented_assignment",
                    "return_statement",
                    "default_parameter",
                    "keyword_argument",
                }
            ),
            decorators=frozenset({"decorator"}),
            probes=("__inkling__()",),
        ),
    ),
    LanguageSpec(
        id="javascript",
        lsp_ids=("javascript", "javascriptreact"),
        extensions=(".js", ".mjs", ".cjs", ".jsx"),
        grammar_module="tree_sitter_javascript",
        grammar_function="language",
        line_comment="//",
        indent_blocks=False,
        string_kinds=frozenset({"string", "template_string", "string_fragment", "regex"}),
        comment_kinds=frozenset({"comment"}),
        body_kinds=frozenset({"statement_block", "class_body", "switch_body"}),
        definition_kinds=frozenset(
            {
                "function_declaration",
                "generator_function_declaration",
                "class_declaration",
                "method_definition",
                "export_statement",
            }
        ),
        syntax=_JS_SYNTAX,
    ),
    LanguageSpec(
        id="typescript",
        lsp_ids=("typescript",),
        extensions=(".ts", ".mts", ".cts"),
        grammar_module="tree_sitter_typescript",
        grammar_function="language_typescript",
        line_comment="//",
        indent_blocks=False,
        string_kinds=frozenset({"string", "template_string", "string_fragment", "regex"}),
        comment_kinds=frozenset({"comment"}),
        body_kinds=frozenset({"statement_block", "class_body", "switch_body", "interface_body", "enum_body"}),
        definition_kinds=frozenset(
            {
                "function_declaration",
                "class_declaration",
                "method_definition",
                "interface_declaration",
                "type_alias_declaration",
                "export_statement",
            }
        ),
        syntax=_JS_SYNTAX,
    ),
    LanguageSpec(
        id="tsx",
        lsp_ids=("typescriptreact",),
        extensions=(".tsx",),
        grammar_module="tree_sitter_typescript",
        grammar_function="language_tsx",
        line_comment="//",
        indent_blocks=False,
        string_kinds=frozenset({"string", "template_string", "string_fragment", "regex"}),
        comment_kinds=frozenset({"comment"}),
        body_kinds=frozenset({"statement_block", "class_body", "switch_body", "interface_body", "enum_body"}),
        definition_kinds=frozenset(
            {
                "function_declaration",
                "class_declaration",
                "method_definition",
                "interface_declaration",
                "type_alias_declaration",
                "export_statement",
            }
        ),
        syntax=_JS_SYNTAX,
    ),
    LanguageSpec(
        id="go",
        lsp_ids=("go",),
        extensions=(".go",),
        grammar_module="tree_sitter_go",
        grammar_function="language",
        line_comment="//",
        indent_blocks=False,
        string_kinds=frozenset({"interpreted_string_literal", "raw_string_literal", "rune_literal"}),
        comment_kinds=frozenset({"comment"}),
        body_kinds=frozenset({"block", "field_declaration_list", "literal_value"}),
        definition_kinds=frozenset({"function_declaration", "method_declaration", "type_declaration"}),
        syntax=SyntaxRules(
            bodies=frozenset({"statement_list", "block", "field_declaration_list"}),
            arguments=frozenset({"argument_list"}),
            collections=frozenset({"literal_value"}),
            expressions=frozenset(
                {"assignment_statement", "short_var_declaration", "return_statement", "var_spec"}
            ),
        ),
    ),
    LanguageSpec(
        id="rust",
        lsp_ids=("rust",),
        extensions=(".rs",),
        grammar_module="tree_sitter_rust",
        grammar_function="language",
        line_comment="//",
        indent_blocks=False,
        string_kinds=frozenset({"string_literal", "raw_string_literal", "char_literal"}),
        comment_kinds=frozenset({"line_comment", "block_comment"}),
        body_kinds=frozenset({"block", "declaration_list", "field_declaration_list"}),
        definition_kinds=frozenset(
            {"function_item", "impl_item", "struct_item", "enum_item", "trait_item", "mod_item"}
        ),
        syntax=SyntaxRules(
            bodies=frozenset({"block", "declaration_list", "field_declaration_list"}),
            arguments=frozenset({"arguments"}),
            collections=frozenset({"array_expression", "tuple_expression"}),
            expressions=frozenset({"let_declaration", "assignment_expression", "return_expression"}),
            decorators=frozenset({"attribute_item"}),
        ),
    ),
    LanguageSpec(
        id="java",
        lsp_ids=("java",),
        extensions=(".java",),
        grammar_module="tree_sitter_java",
        grammar_function="language",
        line_comment="//",
        indent_blocks=False,
        string_kinds=frozenset({"string_literal", "character_literal", "text_block"}),
        comment_kinds=frozenset({"line_comment", "block_comment"}),
        body_kinds=frozenset({"block", "class_body", "interface_body", "constructor_body"}),
        definition_kinds=frozenset(
            {
                "method_declaration",
                "constructor_declaration",
                "class_declaration",
                "interface_declaration",
            }
        ),
        syntax=SyntaxRules(
            bodies=frozenset(
                {"block", "class_body", "interface_body", "constructor_body", "switch_block_statement_group"}
            ),
            arguments=frozenset({"argument_list"}),
            collections=frozenset({"array_initializer"}),
            expressions=frozenset({"variable_declarator", "assignment_expression", "return_statement"}),
            decorators=frozenset({"annotation", "marker_annotation"}),
            labelled=frozenset({"switch_block_statement_group"}),
        ),
    ),
    LanguageSpec(
        id="c",
        lsp_ids=("c",),
        extensions=(".c", ".h"),
        grammar_module="tree_sitter_c",
        grammar_function="language",
        line_comment="//",
        indent_blocks=False,
        string_kinds=_C_FAMILY_STRINGS,
        comment_kinds=frozenset({"comment"}),
        body_kinds=frozenset({"compound_statement", "field_declaration_list"}),
        definition_kinds=frozenset({"function_definition", "struct_specifier"}),
        syntax=_C_SYNTAX,
    ),
    LanguageSpec(
        id="cpp",
        lsp_ids=("cpp", "c++", "cuda-cpp"),
        extensions=(".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx"),
        grammar_module="tree_sitter_cpp",
        grammar_function="language",
        line_comment="//",
        indent_blocks=False,
        string_kinds=_C_FAMILY_STRINGS,
        comment_kinds=frozenset({"comment"}),
        body_kinds=frozenset({"compound_statement", "field_declaration_list", "declaration_list"}),
        definition_kinds=frozenset(
            {"function_definition", "class_specifier", "struct_specifier", "namespace_definition"}
        ),
        syntax=_C_SYNTAX,
    ),
)

_BY_LSP_ID = {lsp_id: spec for spec in LANGUAGES for lsp_id in spec.lsp_ids}
_BY_EXTENSION = {ext: spec for spec in LANGUAGES for ext in spec.extensions}


def language_for_id(language_id: str | None) -> LanguageSpec | None:
    """The spec for an LSP languageId (or Inkling's own id), if Inkling has a grammar."""
    if not language_id:
        return None
    return _BY_LSP_ID.get(language_id) or next((spec for spec in LANGUAGES if spec.id == language_id), None)


def language_for_path(path: str) -> LanguageSpec | None:
    return _BY_EXTENSION.get(PurePath(path).suffix.lower())


def lsp_language_id_for_path(path: str) -> str:
    """The languageId an editor would send for this file ('plaintext' if unknown)."""
    spec = language_for_path(path)
    if spec is None:
        return "plaintext"
    if spec.id == "javascript" and path.endswith(".jsx"):
        return "javascriptreact"
    return spec.lsp_ids[0]


def supported_lsp_ids() -> list[str]:
    return sorted(_BY_LSP_ID)
