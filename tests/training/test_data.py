"""Data preparation, piece by piece, on small files written by the tests."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lsp_server import syntax
from lsp_server.context import Mode, build_context
from lsp_server.corpora import CorpusError, DebianSource, HeldOut, fingerprint
from lsp_server.corpora import split_of as split_of_evaluation
from lsp_server.holes import Hole, HoleKind
from lsp_server.holes.nodes import find_spans
from lsp_server.languages import language_for_id
from lsp_server.scrub import ScrubReport, scrub
from training.config import ConfigError, apply_overrides, build, load_yaml, section
from training.data import sources
from training.data.dedup import DedupConfig, duplicates
from training.data.docs import code_blocks
from training.data.examples import ExampleConfig, examples_for_file, fim_example
from training.data.filters import FilterConfig, detect_language, rejection
from training.data.prepare import PrepareConfig, format_stats, prepare
from training.data.sources import SourceConfig, iter_source
from training.data.split import Exclusions, split_of

PYTHON = '''import os


def area(width, height):
    """Return the area of a rectangle."""
    result = width * height
    return result


class Counter:
    def __init__(self):
        self.count = 0

    def bump(self, by=1):
        if by < 0:
            raise ValueError("negative")
        self.count += by
        return self.count


for name in os.listdir("."):
    print(name.upper(), len(name))
'''

GO = """package main

import "fmt"

// Sum adds the numbers in xs.
func Sum(xs []int) int {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}

func main() {
	fmt.Println(Sum([]int{1, 2, 3}))
}
"""


# -- config ------------------------------------------------------------------------


@dataclass
class _Inner:
    rate: float = 0.1
    names: list[str] = field(default_factory=list)


@dataclass
class _Outer:
    steps: int = 1
    mode: str = "a"
    inner: _Inner = field(default_factory=_Inner)


def test_config_builds_nested_dataclasses_and_applies_overrides() -> None:
    data = apply_overrides({"inner": {"rate": 1}}, ["steps=30", "inner.names=[x, y]"])
    config = build(_Outer, data)
    assert config == _Outer(steps=30, inner=_Inner(rate=1.0, names=["x", "y"]))


def test_config_rejects_unknown_keys_and_wrong_types() -> None:
    with pytest.raises(ConfigError, match=r"unknown key inner\.rat.*known keys of inner: names, rate"):
        build(_Outer, {"inner": {"rat": 1}})
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        build(_Outer, {"steps": "many"})
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_overrides({}, ["steps"])


def test_recipe_sections() -> None:
    recipe = {"prepare": {"output": "x"}, "sft": {"max_steps": 3}}
    assert section(recipe, "sft", ("prepare", "sft")) == {"max_steps": 3}
    assert section({"max_steps": 3}, "sft", ("prepare", "sft")) == {"max_steps": 3}


def test_a_recipe_extends_another(tmp_path: Path) -> None:
    (tmp_path / "first.yaml").write_text(
        "prepare: {output: a, examples: {seed: 1, spm_share: 0.75}, exclude_lists: [], sources: [{path: x}]}\n"
        "sft: {max_steps: 500, lora: {r: 16, alpha: 32}}\npairs: {holes: 4}\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/second.yaml").write_text(
        "extends: ../first.yaml\nprepare: {output: b, examples: {seed: 2}, exclude_lists: null,"
        " sources+: [{path: y}]}\n"
        "sft: {lora: {alpha: 8}}\npairs: null\n"
    )
    assert load_yaml(tmp_path / "sub/second.yaml") == {
        "prepare": {
            "output": "b",
            "examples": {"seed": 2, "spm_share": 0.75},
            "sources": [{"path": "x"}, {"path": "y"}],
        },
        "sft": {"max_steps": 500, "lora": {"r": 16, "alpha": 8}},
    }
    (tmp_path / "third.yaml").write_text("extends: sub/second.yaml\nsft+: [{lora: 1}]\n")
    with pytest.raises(ConfigError, match="sft\\+ adds a list to a list"):
        load_yaml(tmp_path / "third.yaml")
    (tmp_path / "first.yaml").write_text("extends: sub/second.yaml\n")
    with pytest.raises(ConfigError, match="circle"):
        load_yaml(tmp_path / "sub/second.yaml")


@pytest.mark.parametrize(
    "recipe_file", sorted(p.name for p in (Path(__file__).parents[2] / "training/recipes").glob("*.yaml"))
)
def test_shipped_recipes_are_valid(recipe_file: str) -> None:
    from training.cli import COMMANDS, _config_class

    recipe = load_yaml(Path(__file__).parents[2] / "training/recipes" / recipe_file)
    assert set(recipe) <= set(COMMANDS)
    for name in recipe:
        build(_config_class(name), section(recipe, name, COMMANDS), name)


# -- filters, scrubbing, dedup, split ------------------------------------------------


def test_language_detection() -> None:
    assert detect_language("a/b.py", "") == "python"
    assert detect_language("tool", "#!/usr/bin/env python3\nprint(1)\n") == "python"
    assert detect_language("README.md#block0", "x", declared="js") == "javascript"
    assert detect_language("notes.txt", "hello") is None


@pytest.mark.parametrize(
    ("path", "text", "reason"),
    [
        ("a.py", None, "binary"),
        ("a.txt", "hello world " * 20, "language"),
        ("vendor/lib.py", PYTHON, "vendored"),
        ("node_modules/x/index.js", "var a = 1;\n" * 20, "vendored"),
        ("gen.py", "# Code generated by protoc. DO NOT EDIT.\n" + PYTHON, "generated"),
        ("min.js", "var a=1;" * 400, "minified"),
        ("small.py", "x = 1\n", "too small"),
        ("humaneval/problem.py", PYTHON, "benchmark"),
        ("a.py", PYTHON, None),
    ],
)
def test_filters_say_why(path: str, text: str | None, reason: str | None) -> None:
    language = detect_language(path, text or "")
    assert rejection(path, text, language, FilterConfig()) == reason


def test_scrub_replaces_secrets_and_personal_data_and_reports_without_values() -> None:
    aws = "AKIA" + "ABCDEFGHIJKLMNOP"
    github = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    text = (
        f'AWS = "{aws}"\n'
        f'TOKEN = "{github}"\n'
        f"KEY = '''{key}'''\n"
        'DB = "postgres://admin:s3cr3tP4ss@db.internal:5432/app"\n'
        'password = "Xy7#kLm9!qR"\n'
        "# Contact: Jane Doe <jane.doe@corp-mail.com>\n"
        'SERVER = "93.184.216.34"\n'
        'LOCAL = "127.0.0.1"  # and section 8.2.4.44, version 2.7.2.2\n'
        'DOC = "someone@example.com"\n'
        'password = "changeme"\n'
    )
    report = ScrubReport()
    clean = scrub(text, "app/settings.py", report)
    for secret in (
        aws,
        github,
        "MIIEowIBAAKCAQEA",
        "s3cr3tP4ss",
        "Xy7#kLm9!qR",
        "jane.doe@corp-mail.com",
        "93.184.216.34",
    ):
        assert secret not in clean
    assert "postgres://admin:<PASSWORD>@db.internal" in clean
    assert "user@example.com" in clean and "192.0.2.1" in clean
    for kept in ("127.0.0.1", "8.2.4.44", "2.7.2.2", "someone@example.com", '"changeme"'):
        assert kept in clean
    summary = report.as_dict()
    assert set(summary["replaced"]) == {
        "aws_access_key",
        "github_token",
        "private_key",
        "url_password",
        "password",
        "email",
        "ip_address",
    }
    assert aws not in json.dumps(summary) and summary["files"]["email"] == 1


def test_exact_and_near_duplicates_keep_the_first_path() -> None:
    other = PYTHON.replace("print(name.upper(), len(name))", "print(name.lower(), len(name))")
    items = [("b/copy.py", PYTHON + "\n\n"), ("a/orig.py", PYTHON), ("c/near.py", other), ("d/go.go", GO)]
    dropped = duplicates(items, DedupConfig(threshold=0.7))
    assert dropped == {"b/copy.py": ("exact", "a/orig.py"), "c/near.py": ("near", "a/orig.py")}


def test_split_is_by_path_and_stable() -> None:
    paths = [f"src/module_{i}.py" for i in range(2000)]
    splits = [split_of(p, 0.1, 0.1) for p in paths]
    assert splits == [split_of(p, 0.1, 0.1) for p in paths]
    assert 150 < splits.count("test") < 250 and 150 < splits.count("validation") < 250
    assert split_of("x.py", 0.1, 0.1, salt="a") in ("train", "validation", "test")


def test_exclusions_match_paths_suffixes_and_globs() -> None:
    exclusions = Exclusions(["json/decoder.py", "*/test_*.py", "# comment", ""])
    assert exclusions.matches("cpython/json/decoder.py")
    assert exclusions.matches("cpython/unittest/test_case.py")
    assert not exclusions.matches("cpython/json/encoder.py")


# -- docs ------------------------------------------------------------------------------


def test_code_blocks_from_markdown_and_rst() -> None:
    markdown = "# Use\n\n```python\nimport app\napp.run()\n```\n\n```\none line\n```\n"
    assert [(b.language, b.code) for b in code_blocks(markdown, "README.md")] == [
        ("python", "import app\napp.run()\n")
    ]
    rst = "Usage\n=====\n\n.. code-block:: python\n   :linenos:\n\n   import app\n   app.run()\n\nAfter.\n"
    assert [(b.language, b.code) for b in code_blocks(rst, "guide.rst")] == [
        ("python", "import app\napp.run()\n")
    ]


# -- holes and examples ----------------------------------------------------------------


def _mode_at(text: str, hole: Hole, language: str) -> Mode:
    spec = language_for_id(language)
    assert spec is not None
    document = text[: hole.start] + text[hole.end :]
    tree = syntax.parse(spec, document.encode())
    return build_context(document, hole.start, spec, tree).mode


@pytest.mark.parametrize(("text", "language"), [(PYTHON, "python"), (GO, "go")])
def test_block_holes_are_what_the_server_completes_in_block_mode(text: str, language: str) -> None:
    spans = find_spans(text, language)
    blocks = spans.by_kind[HoleKind.BLOCK]
    assert blocks
    for hole in blocks:
        assert _mode_at(text, hole, language) is Mode.BLOCK, text[hole.start : hole.end]


@pytest.mark.parametrize(("text", "language"), [(PYTHON, "python"), (GO, "go")])
def test_line_holes_are_whole_lines_and_expressions_are_nodes(text: str, language: str) -> None:
    spans = find_spans(text, language)
    for hole in spans.by_kind[HoleKind.LINE]:
        assert hole.start == 0 or text[hole.start - 1] == "\n"
        assert hole.end == len(text) or text[hole.end] == "\n"
        # A hole that empties a whole body is a block-mode completion; never a skipped one.
        assert _mode_at(text, hole, language) is not Mode.SKIP
    expressions = {text[h.start : h.end] for h in spans.by_kind[HoleKind.EXPRESSION]}
    assert expressions & {"width * height", "Sum([]int{1, 2, 3})"}
    for cut, end in spans.line_cuts:
        assert text[end] == "\n" and "\n" not in text[cut:end]


def test_comment_to_code_holes_follow_a_docstring_or_comment() -> None:
    python = {PYTHON[h.start : h.end] for h in find_spans(PYTHON, "python").documented}
    assert python == {"    result = width * height\n    return result"}
    go = {GO[h.start : h.end] for h in find_spans(GO, "go").documented}
    assert go == {"\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n\treturn total"}


def test_a_hole_kind_given_by_name_is_the_vocabularys() -> None:
    assert Hole(0, 3, "line_rest").kind is HoleKind.LINE_REST  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'statement' is not a valid HoleKind"):
        Hole(0, 3, "statement")  # type: ignore[arg-type]


def test_prefix_never_ends_in_blanks_and_windows_are_whole_lines() -> None:
    start = PYTHON.index("width * height")
    example = fim_example(
        "a.py", PYTHON, "python", Hole(start, start + 14, HoleKind.EXPRESSION), "psm", ExampleConfig()
    )
    assert example is not None
    assert example.prefix.endswith("result =") and example.middle == " width * height"
    assert example.prefix + example.middle + example.suffix == PYTHON
    small = ExampleConfig(prefix_chars=60, suffix_chars=40)
    windowed = fim_example(
        "a.py", PYTHON, "python", Hole(start, start + 14, HoleKind.EXPRESSION), "spm", small
    )
    assert windowed is not None and len(windowed.prefix) <= 60 and len(windowed.suffix) <= 40
    assert windowed.prefix.startswith(" ") or windowed.prefix[0].isalpha()
    assert PYTHON[: start - 1].endswith(windowed.prefix) or windowed.prefix in PYTHON
    assert windowed.suffix.endswith("\n")


def test_examples_mix_kinds_orders_and_are_reproducible() -> None:
    text = "".join(PYTHON.replace("area", f"area{i}").replace("bump", f"bump{i}") for i in range(8))
    config = ExampleConfig(chars_per_example=50, max_examples_per_file=60)
    first = list(examples_for_file("a.py", text, "python", config))
    assert first == list(examples_for_file("a.py", text, "python", config))
    kinds = {e.kind for e in first}
    assert kinds == {"fim", "comment_code", "next_token"}
    assert {e.order for e in first if e.kind == "fim"} == {"psm", "spm"}
    assert {e.hole for e in first if e.kind == "fim"} >= {"line", "block", "random"}
    for example in first:
        assert not example.prefix.endswith((" ", "\t"))
        assert example.prefix + example.middle + example.suffix in text


SEEDED_EXAMPLES = {
    7: [
        [
            ("fim", "line_rest", "psm", " height"),
            ("fim", "line", "psm", '    """Return the area of a rectangle."""\n    result = width * height'),
            ("comment_code", "comment_code", "spm", "    result = width * height\n    return result"),
            ("fim", "line_rest", "spm", '("negative")'),
            ("fim", "line", "psm", '            raise ValueError("negative")\n        self.count += by'),
            (
                "fim",
                "random",
                "psm",
                "    return result\n\n\nclass Counter:\n    def __init__(self):\n        self.count = 0\n\n"
                "    def bump(self, by=1):\n        if by <",
            ),
        ],
        [
            ("fim", "expression", "psm", "([]int{1, 2, 3})"),
            ("fim", "random", "psm", "func Sum(xs []int) int {\n\ttotal := 0\n\tfor _, x :="),
            (
                "comment_code",
                "comment_code",
                "spm",
                "\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n\treturn total",
            ),
        ],
    ],
    22: [
        [
            (
                "fim",
                "block",
                "spm",
                '    """Return the area of a rectangle."""\n    result = width * height\n    return result',
            ),
            ("comment_code", "comment_code", "psm", "    result = width * height\n    return result"),
            ("fim", "line", "psm", "    return result"),
            ("fim", "line", "spm", "    def __init__(self):\n        self.count = 0"),
            ("fim", "line_rest", "spm", " height"),
            ("fim", "line", "psm", "    result = width * height\n    return result"),
        ],
        [
            (
                "comment_code",
                "comment_code",
                "psm",
                "\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n\treturn total",
            ),
            ("fim", "line", "spm", "func main() {\n\tfmt.Println(Sum([]int{1, 2, 3}))\n}"),
            ("fim", "line", "psm", 'import "fmt"'),
        ],
    ],
}
"""(kind, hole, order, middle) of each file's examples, as made before the hole cutters moved into
`lsp_server.holes`: for a fixed seed, a refactoring leaves the training data as it was."""


@pytest.mark.parametrize("seed", sorted(SEEDED_EXAMPLES))
def test_a_seed_gives_the_same_examples_as_before(seed: int) -> None:
    config = ExampleConfig(chars_per_example=60, max_examples_per_file=8, seed=seed)
    made = [
        [(e.kind, e.hole, e.order, e.middle) for e in examples_for_file(path, text, language, config)]
        for path, text, language in (("a.py", PYTHON, "python"), ("main.go", GO, "go"))
    ]
    assert made == SEEDED_EXAMPLES[seed]


# -- sources and the whole preparation ----------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_sources_directory_git_and_datasets(tmp_path: Path) -> None:
    import datasets

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg/app.py").write_text(PYTHON)
    (repo / "docs.md").write_text("```python\nimport os\nprint(os.sep)\n```\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
    (repo / "pkg/uncommitted.py").write_text("SECRET = 1\n")
    found = {f.path: f for f in iter_source(SourceConfig(path=str(repo)))}
    assert set(found) == {"repo/pkg/app.py", "repo/docs.md#block0"}
    assert found["repo/docs.md#block0"].declared_language == "python"
    plain = {f.path for f in iter_source(SourceConfig(path=str(repo), kind="directory", exclude=["*.md"]))}
    assert plain == {"repo/pkg/app.py", "repo/pkg/uncommitted.py"}

    rows = [
        {"content": GO, "path": "main.go", "lang": "Go"},
        {"content": PYTHON, "path": "a.py", "lang": "Python"},
    ]
    jsonl = tmp_path / "stack.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "stack.parquet"))
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "on_disk"))
    for path in (jsonl, tmp_path / "stack.parquet", tmp_path / "on_disk"):
        files = list(iter_source(SourceConfig(path=str(path), name="stack", language_field="lang")))
        assert [(f.path, f.declared_language) for f in files] == [
            ("stack/main.go", "Go"),
            ("stack/a.py", "Python"),
        ]
    with pytest.raises(ConfigError, match="no column 'text'"):
        list(iter_source(SourceConfig(path=str(jsonl), text_field="text")))


def test_prepare_writes_a_dataset_and_a_report(tmp_path: Path) -> None:
    import datasets

    source = tmp_path / "team"
    for i in range(30):
        body = (
            PYTHON.replace("area", f"area_{i}").replace("Counter", f"Counter{i}").replace("bump", f"bump_{i}")
        )
        body += f"\n\ndef helper_{i}(v):\n    return v * {i} + {i * 7} - len(str(v)) * {i + 3}\n"
        (source / f"mod{i // 10}").mkdir(parents=True, exist_ok=True)
        (source / f"mod{i // 10}/file{i}.py").write_text(body)
    (source / "mod0/copy.py").write_text((source / "mod0/file0.py").read_text())
    (source / "mod0/keys.py").write_text(PYTHON + '\nAPI = "AKIAABCDEFGHIJKLMNOP"\n')
    (source / "mod0/blob.bin").write_bytes(b"\0\1\2" * 100)
    config = build(
        PrepareConfig,
        {
            "sources": [{"path": str(source)}],
            "output": str(tmp_path / "out"),
            "validation_share": 0.2,
            "test_share": 0.2,
            "exclude": ["team/mod2/file25.py"],
            "examples": {"chars_per_example": 300},
        },
    )
    stats = prepare(config, progress=False)
    assert stats["dropped"] == {"binary": 1, "excluded": 1}
    assert stats["dedup"]["exact"] == 1
    assert stats["scrub"]["replaced"]["aws_access_key"] == 1
    data = datasets.load_from_disk(str(tmp_path / "out/dataset"))
    files = json.loads((tmp_path / "out/files.json").read_text())
    assert sum(len(v) for v in files.values()) == 30  # 33 files - binary - excluded - duplicate
    for split in ("train", "validation", "test"):
        assert set(data[split]["path"]) <= set(files[split])
        assert len(data[split]) == stats["splits"][split]["examples"]
    assert not set(files["train"]) & (set(files["validation"]) | set(files["test"]))
    assert "AKIAABCDEFGHIJKLMNOP" not in "".join(
        list(data["train"]["prefix"]) + list(data["train"]["middle"])
    )
    assert json.loads((tmp_path / "out/stats.json").read_text())["splits"] == stats["splits"]


def test_files_the_evaluation_tests_on_are_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.data import prepare as prepare_module

    source = tmp_path / "python-stdlib"
    for name in ("held1.py", "kept.py"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(PYTHON.replace("area", name[:4]))
    copied = tmp_path / "team"
    copied.mkdir()
    (copied / "renamed.py").write_text(PYTHON.replace("area", "copy") + "\n\n")
    (copied / "own.py").write_text(PYTHON.replace("area", "mine"))
    held = HeldOut(frozenset({"python-stdlib"}), frozenset({fingerprint(PYTHON.replace("area", "copy"))}))
    monkeypatch.setattr(prepare_module, "held_out", lambda: held)
    sources = [{"path": str(source)}, {"path": str(copied)}]
    config = build(PrepareConfig, {"sources": sources, "output": str(tmp_path / "out")})
    stats = prepare(config, progress=False)
    # held1.py by its key (the evaluation's split says test), renamed.py by its content.
    assert [split_of_evaluation(f"python-stdlib/{n}") for n in ("held1.py", "kept.py")] == ["test", "dev"]
    assert stats["dropped"] == {"evaluation test": 2}, stats["dropped"]
    assert stats["evaluation_test_files"] == "excluded"
    assert sum(split["files"] for split in stats["splits"].values()) == 2


def test_an_optional_source_that_is_missing_is_reported_and_skipped(tmp_path: Path) -> None:
    source = tmp_path / "team"
    source.mkdir()
    (source / "a.py").write_text(PYTHON)
    sources = [
        {"path": str(source)},
        {"path": str(tmp_path / "nowhere"), "name": "go-stdlib", "optional": True},
    ]
    config = build(
        PrepareConfig, {"sources": sources, "output": str(tmp_path / "out"), "exclude_evaluation_test": False}
    )
    stats = prepare(config, progress=False)
    assert stats["sources"]["go-stdlib"] == {
        "files_seen": 0,
        "files_kept": 0,
        "missing": str(tmp_path / "nowhere"),
    }
    assert stats["sources"]["team"]["files_kept"] == 1
    assert "go-stdlib: " + str(tmp_path / "nowhere") + " is not on this machine" in format_stats(stats)
    required = build(PrepareConfig, {"sources": sources[1:2], "output": str(tmp_path / "out2")})
    required.sources[0].optional = False
    with pytest.raises(ConfigError, match="does not exist"):
        prepare(required, progress=False)


def test_go_stdlib_names_the_installed_go_source_whatever_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "proc.go").write_text("package runtime\n\nfunc main() {}\n")
    installed = DebianSource("golang-1.24-src", "go-stdlib", "go", str(tmp_path), (".go",))
    monkeypatch.setattr(sources, "go_source", lambda: installed)
    files = list(iter_source(SourceConfig(path="go-stdlib/runtime", name="go-runtime")))
    assert [f.path for f in files] == ["go-runtime/proc.go"]
    assert sources.source_root("go-stdlib") == tmp_path

    def not_installed() -> DebianSource:
        raise CorpusError("the go corpus needs `apt-get install golang-src`")

    monkeypatch.setattr(sources, "go_source", not_installed)
    assert not sources.source_root("go-stdlib/runtime").exists()

    def no_dpkg() -> DebianSource:
        raise FileNotFoundError("dpkg-query")  # not a Debian machine

    monkeypatch.setattr(sources, "go_source", no_dpkg)
    assert not sources.source_root("go-stdlib").exists()


GEOMETRY = '''"""Shapes."""


def rectangle_area(width: float, height: float) -> float:
    """Contact: owner@acme-corp.io, key AKIAABCDEFGHIJKLMNOP."""
    return width * height


def circle_area(radius: float) -> float:
    return 3.14159 * radius * radius
'''

REPORT = """from shapes.geometry import circle_area, rectangle_area


def total(shapes):
    result = 0.0
    for kind, size in shapes:
        if kind == "rectangle":
            result += rectangle_area(size, size / 2)
        else:
            result += circle_area(size)
    return result


def describe(shapes):
    print("total area", total(shapes), "of", len(shapes), "shapes")
    return rectangle_area(1.0, 2.0) + circle_area(0.5)
"""


def _shapes_project(tmp_path: Path, examples: dict[str, object]) -> PrepareConfig:
    """A package whose six reports use geometry.py's functions; a prepare config over it."""
    source = tmp_path / "team"
    (source / "shapes").mkdir(parents=True)
    (source / "shapes/__init__.py").write_text("")
    (source / "shapes/geometry.py").write_text(GEOMETRY)
    for i in range(6):
        (source / f"shapes/report{i}.py").write_text(REPORT.replace("total", f"total_{i}"))
    (source / "shapes/secret.py").write_text("def hidden_helper(x):\n    return x\n" * 3)
    return build(
        PrepareConfig,
        {
            "sources": [{"path": str(source)}],
            "output": str(tmp_path / "out"),
            "validation_share": 0.0,
            "test_share": 0.0,
            "exclude": ["team/shapes/secret.py"],
            "examples": examples,
        },
    )


def test_some_examples_carry_the_project_context_the_server_would_give(tmp_path: Path) -> None:
    import datasets

    config = _shapes_project(
        tmp_path, {"chars_per_example": 100, "context_share": 1.0, "context_tokens": 200}
    )
    stats = prepare(config, progress=False)
    rows = list(datasets.load_from_disk(str(tmp_path / "out/dataset"))["train"])
    with_context = [r for r in rows if r["context"] != "[]"]
    assert stats["examples"]["with_project_context"] == len(with_context) > 0
    reports = [r for r in with_context if "report" in r["path"]]
    assert reports, with_context
    for row in reports:
        files = json.loads(row["context"])
        assert row["context_path"].startswith("shapes/report") and row["context_path"].endswith(".py")
        text = "".join(f["path"] + f["text"] for f in files)
        # The imported file's signatures, found by the server's own project context.
        assert "shapes/geometry.py" in text and "def rectangle_area(width: float, height: float)" in text
        # Nothing excluded, nothing unscrubbed, reaches a prompt.
        assert "hidden_helper" not in text and "AKIAABCDEFGHIJKLMNOP" not in text and "owner@" not in text
    assert all(r["context"] == "[]" for r in rows if r["kind"] == "next_token")


def test_crossfile_holes_are_first_uses_of_another_files_names_and_carry_its_context(tmp_path: Path) -> None:
    import datasets

    config = _shapes_project(
        tmp_path,
        {"mix": {"fim": 1.0}, "holes": {"crossfile": 1.0}, "chars_per_example": 100, "context_tokens": 200},
    )
    prepare(config, progress=False)
    rows = list(datasets.load_from_disk(str(tmp_path / "out/dataset"))["train"])
    crossfile = [r for r in rows if r["hole"] == "crossfile"]
    # Only the reports use names another file defines; geometry.py has no such line.
    assert crossfile and all("report" in r["path"] for r in crossfile)
    for row in crossfile:
        # The hole is (the rest of) one line, holding its first use of a geometry function...
        assert "rectangle_area(" in row["middle"] or "circle_area(" in row["middle"]
        assert row["middle"].count("\n") <= 1
        # ...which the prefix has not used yet, outside its import.
        body = row["prefix"].split("\n", 1)[1] if row["prefix"].startswith("from ") else row["prefix"]
        name = "rectangle_area" if "rectangle_area(" in row["middle"] else "circle_area"
        assert f"{name}(" not in body
        # And it always comes with the context that answers it.
        files = json.loads(row["context"])
        assert "def rectangle_area(width: float, height: float)" in "".join(f["text"] for f in files)
