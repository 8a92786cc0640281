from pathlib import Path

from lsp_server.languages import language_for_id
from lsp_server.project_context import ContextBudget, ProjectContext, _still_covers
from lsp_server.project_index import ProjectIndex
from lsp_server.prompt import CHARS_PER_TOKEN
from lsp_server.templates import ContextFile

BILLING = '''"""Billing."""

def compute_total(invoice, tax_rate=0.2):
    """Total with tax."""
    return 1

class Invoice:
    customer_id: str
'''
REPORT = "from shop.billing import Invoice, compute_total\n\n\ndef summarize(invoices):\n    for invoice in invoices:\n        total = \n"


def make_project(root: Path) -> Path:
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "billing.py").write_text(BILLING)
    (root / "shop" / "report.py").write_text(REPORT)
    (root / "go.mod").write_text("module example.com/m\n")
    (root / "util").mkdir()
    (root / "util" / "util.go").write_text("package util\nfunc Double(x int) int { return 2 * x }\n")
    (root / "main.go").write_text(
        'package main\nimport "example.com/m/util"\nfunc main() { util.Double(2) }\n'
    )
    (root / "web").mkdir()
    (root / "web" / "format.ts").write_text("export function money(x: number): string { return '' }\n")
    (root / "web" / "app.ts").write_text('import { money } from "./format";\nmoney(2);\n')
    return root


def test_imports_resolve_to_workspace_files(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    index = ProjectIndex([root])
    for source, expected in [
        ("shop/report.py", "shop/billing.py"),
        ("main.go", "util/util.go"),
        ("web/app.ts", "web/format.ts"),
    ]:
        symbols = index.symbols(root / source)
        assert symbols is not None
        related = index.related_files(root / source, symbols)
        assert root.resolve() / expected in related, (source, related)


def test_gather_brings_the_imported_signatures(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    context = ProjectContext(ProjectIndex([root]))
    offset = REPORT.index("total = ") + len("total = ")
    files = context.gather(
        root.resolve() / "shop/report.py",
        language_for_id("python"),
        REPORT,
        offset,
        ContextBudget(tokens=300, similar=False),
    )
    assert [f.path for f in files] == ["shop/billing.py"]
    assert "def compute_total(invoice, tax_rate=0.2):" in files[0].text
    assert "return 1" not in files[0].text


def test_selection_is_stable_while_typing_and_within_budget(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    context = ProjectContext(ProjectIndex([root]))
    path = root.resolve() / "shop/report.py"
    offset = REPORT.index("total = ") + len("total = ")
    first = context.gather(path, language_for_id("python"), REPORT, offset, ContextBudget(tokens=300))
    typed = REPORT[:offset] + "comp" + REPORT[offset:]
    assert (
        context.gather(path, language_for_id("python"), typed, offset + 4, ContextBudget(tokens=300)) is first
    )
    tiny = context.gather(path, language_for_id("python"), REPORT, offset, ContextBudget(tokens=20))
    assert sum(len(f.text) for f in tiny) <= 20 * CHARS_PER_TOKEN
    assert context.gather(path, language_for_id("python"), REPORT, offset, ContextBudget(tokens=0)) == []


def test_similar_code_from_other_buffers(tmp_path: Path) -> None:
    context = ProjectContext(ProjectIndex([tmp_path]))
    other = (
        "def load_config(path):\n    with open(path) as handle:\n        return parse_config(handle.read())\n"
    )
    context.note_open(tmp_path / "config.py", "python", other)
    context.note_open(tmp_path / "unrelated.py", "python", "x = 1\n")
    here = "def save_config(path, config):\n    with open(path, 'w') as handle:\n        \n"
    files = context.gather(
        tmp_path / "main.py",
        language_for_id("python"),
        here,
        len(here) - 1,
        ContextBudget(tokens=300, definitions=False),
    )
    assert [f.path for f in files] == ["config.py"]


def test_a_covering_selection_is_kept_across_new_lines(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    context = ProjectContext(ProjectIndex([root]))
    path = root.resolve() / "shop/report.py"
    offset = REPORT.index("total = ") + len("total = ")
    first = context.gather(path, language_for_id("python"), REPORT, offset, ContextBudget(tokens=300))
    # A new line with new names above the cursor: nothing new is relevant.
    moved = REPORT[:offset] + "compute_total(invoice)\n        other_name = 1\n        x = "
    again = context.gather(path, language_for_id("python"), moved, len(moved), ContextBudget(tokens=300))
    assert again is first


def test_the_shown_selection_stays_while_it_holds_the_best_item(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    context = ProjectContext(ProjectIndex([root]))
    notes = "ledger_rows = tally_ledger(ledger_totals)\n"
    context.note_open(root.resolve() / "notes.py", "python", notes)
    path = root.resolve() / "shop/report.py"
    offset = REPORT.index("total = ") + len("total = ")
    budget = ContextBudget(tokens=300, similar=False)
    first = context.gather(path, language_for_id("python"), REPORT, offset, budget)
    assert [f.path for f in first] == ["shop/billing.py"]
    # The new line above shares words with the open buffer: the fresh choice adds it in
    # front of billing.py, its best item; the prompt keeps the context it has.
    moved = REPORT[:offset] + "ledger_rows = tally_ledger(ledger_totals)\n        x = "
    fresh = ProjectContext(ProjectIndex([root]))
    fresh.note_open(root.resolve() / "notes.py", "python", notes)
    assert [f.path for f in fresh.gather(path, language_for_id("python"), moved, len(moved), budget)] == [
        "notes.py",
        "shop/billing.py",
    ]
    assert context.gather(path, language_for_id("python"), moved, len(moved), budget) is first


def test_unrelated_or_closed_buffers_stay_out_of_the_prompt(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    path = root.resolve() / "shop/report.py"
    offset = REPORT.index("total = ") + len("total = ")
    moved = REPORT[:offset] + "ledger_rows = tally_ledger(ledger_totals)\n        x = "
    budget = ContextBudget(tokens=300, similar=False, definitions=False)
    notes_path = root.resolve() / "notes.py"
    context = ProjectContext(ProjectIndex([root]))
    # Shares two of its names with the lines above the cursor: a Jaccard share of 0.13.
    context.note_open(notes_path, "python", "ledger_rows = other_thing(ledger_totals)\n")
    assert context.gather(path, language_for_id("python"), moved, len(moved), budget) == []
    context.note_open(notes_path, "python", "ledger_rows = tally_ledger(ledger_totals)\n")
    assert [f.path for f in context.gather(path, language_for_id("python"), moved, len(moved), budget)] == [
        "notes.py"
    ]
    context.note_close(notes_path)
    assert context.gather(path, language_for_id("python"), moved, len(moved), budget) == []
    # What the user edited there stays: it is their own recent work.
    context.note_change(notes_path, "python", "ledger_rows = tally_ledger(ledger_totals)\n", 0)
    context.note_close(notes_path)
    assert [f.path for f in context.gather(path, language_for_id("python"), moved, len(moved), budget)] == [
        "notes.py"
    ]


def test_a_new_best_item_replaces_the_shown_selection() -> None:
    billing = ContextFile("shop/billing.py", "def compute_total(invoice): ...")
    notes = ContextFile("notes.py", "def tally_ledger(rows): ...")
    assert _still_covers([billing], [notes, billing])
    assert _still_covers([notes, billing], [billing])
    assert not _still_covers([billing], [billing, notes])
    assert _still_covers([billing], [])


def test_a_submodule_imported_from_its_package_is_related(tmp_path: Path) -> None:
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "__init__.py").write_text("")
    (tmp_path / "loop" / "events.py").write_text("def new_event_loop():\n    return None\n")
    (tmp_path / "loop" / "runners.py").write_text("from . import events\n\nloop = events.new_event_loop()\n")
    index = ProjectIndex([tmp_path])
    path = tmp_path.resolve() / "loop" / "runners.py"
    symbols = index.symbols(path)
    assert symbols is not None
    assert tmp_path.resolve() / "loop" / "events.py" in index.related_files(path, symbols)


def test_absolute_imports_resolve_when_the_workspace_is_the_package_itself(tmp_path: Path) -> None:
    root = make_project(tmp_path) / "shop"  # opened at shop/, the code says `from shop.billing import`
    index = ProjectIndex([root])
    symbols = index.symbols(root.resolve() / "report.py")
    assert symbols is not None
    assert root.resolve() / "billing.py" in index.related_files(root.resolve() / "report.py", symbols)


def test_a_name_imported_one_by_one_is_not_crowded_out_by_the_rest_of_a_large_file(tmp_path: Path) -> None:
    filler = "".join(f'def helper_{i}(value, option=None):\n    """Helper {i}."""\n\n\n' for i in range(60))
    (tmp_path / "big.py").write_text(filler + "def wanted(first, second):\n    return first\n")
    here = "from big import wanted\n\n\ndef run(items):\n    for item in items:\n        \n"
    context = ProjectContext(ProjectIndex([tmp_path]))
    files = context.gather(
        tmp_path.resolve() / "main.py", language_for_id("python"), here, len(here) - 1, ContextBudget(200)
    )
    assert [f.path for f in files] == ["big.py"]
    assert "def wanted(first, second):" in files[0].text
    assert sum(len(f.text) for f in files) <= 200 * 3.2


def test_name_lookups_stay_within_the_language(tmp_path: Path) -> None:
    (tmp_path / "testdata").mkdir()
    (tmp_path / "testdata" / "fixture.c").write_text("int checksum(const char *data) { return 0; }\n")
    index = ProjectIndex([tmp_path])
    index.crawl_now()
    assert index.lookup("checksum")
    here = "package main\n\nfunc run(data string) int {\n\treturn checksum(data)\n}\n\nfunc f() {\n\t\n"
    context = ProjectContext(index)
    files = context.gather(
        tmp_path.resolve() / "main.go", language_for_id("go"), here, len(here) - 1, ContextBudget(300)
    )
    assert files == []


def test_a_name_imported_from_a_barrel_that_re_exports_it_is_looked_up(tmp_path: Path) -> None:
    (tmp_path / "src" / "utils").mkdir(parents=True)
    (tmp_path / "src" / "core").mkdir()
    (tmp_path / "src" / "internal.ts").write_text('export * from "./utils/errors";\n')
    (tmp_path / "src" / "utils" / "errors.ts").write_text(
        "export function die(code: number, ...args: any[]): never {\n  throw new Error(String(code));\n}\n"
    )
    here = 'import { die } from "../internal";\n\nexport function run(x: number) {\n  if (x < 0) {\n    \n'
    index = ProjectIndex([tmp_path])
    index.crawl_now()
    context = ProjectContext(index)
    path = tmp_path.resolve() / "src" / "core" / "app.ts"
    files = context.gather(path, language_for_id("typescript"), here, len(here) - 1, ContextBudget(300))
    assert [f.path for f in files] == ["src/utils/errors.ts"]
    assert "export function die(code: number, ...args: any[]): never" in files[0].text


def test_a_long_class_is_abridged_and_the_short_imports_beside_it_still_fit(tmp_path: Path) -> None:
    methods = "".join(
        f"  public method{i}(value: number, option?: string): number {{ return {i} }}\n" for i in range(30)
    )
    (tmp_path / "Scheduler.ts").write_text(f"export class Scheduler {{\n{methods}}}\n")
    (tmp_path / "timerHandle.ts").write_text(
        "export type TimerHandle = number | ReturnType<typeof setTimeout>;\n"
    )
    here = (
        'import { Scheduler } from "./Scheduler";\nimport { TimerHandle } from "./timerHandle";\n\n'
        "export class Action {\n  public id: \n"
    )
    context = ProjectContext(ProjectIndex([tmp_path]))
    path = tmp_path.resolve() / "Action.ts"
    files = context.gather(path, language_for_id("typescript"), here, len(here) - 1, ContextBudget(300))
    by_path = {f.path: f.text for f in files}
    assert "export type TimerHandle" in by_path["timerHandle.ts"]
    scheduler = by_path["Scheduler.ts"]
    assert scheduler.startswith("export class Scheduler {") and "method0(" in scheduler
    assert "method29(" not in scheduler and scheduler.rstrip().endswith("...\n}")
    assert sum(len(f.text) + len(f.path) for f in files) <= 300 * 3.2


def test_go_brings_the_package_functions_the_file_uses_elsewhere(tmp_path: Path) -> None:
    filler = "".join(f"func helper{i}(a, b int) int {{ return a + b }}\n\n" for i in range(40))
    (tmp_path / "helpers.go").write_text(
        f"package noder\n\n{filler}func typed(t *Type, n Node) Node {{ return n }}\n"
    )
    # The window above the cursor looks like the helpers; the code below calls `typed`.
    here = "package noder\n\nfunc build(a, b int) int {\n\t\n}\n\nfunc later(t *Type, n Node) Node {\n\treturn typed(t, n)\n}\n"
    context = ProjectContext(ProjectIndex([tmp_path]))
    offset = here.index("{\n\t\n") + 3
    files = context.gather(
        tmp_path.resolve() / "object.go", language_for_id("go"), here, offset, ContextBudget(200)
    )
    assert any("func typed(t *Type, n Node) Node" in f.text for f in files)


def test_a_bare_name_in_python_does_not_pull_in_a_namesake_from_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "other.py").write_text("def total(rows, weights, *, strict=False):\n    return 0\n")
    here = "def run(rows):\n    total = 0\n    for row in rows:\n        total += row\n    \n"
    index = ProjectIndex([tmp_path])
    index.crawl_now()
    assert index.lookup("total")
    context = ProjectContext(index)
    assert (
        context.gather(
            tmp_path.resolve() / "main.py",
            language_for_id("python"),
            here,
            len(here) - 1,
            ContextBudget(300, similar=False),
        )
        == []
    )


def test_an_imported_name_means_the_definition_under_the_imported_package(tmp_path: Path) -> None:
    (tmp_path / "abc").mkdir()
    (tmp_path / "backends").mkdir()
    (tmp_path / "abc" / "__init__.py").write_text("from ._tasks import TaskGroup\n")
    (tmp_path / "abc" / "_tasks.py").write_text("class TaskGroup:\n    async def start(self, func): ...\n")
    (tmp_path / "backends" / "asyncio.py").write_text("class TaskGroup:\n    def __init__(self, loop): ...\n")
    (tmp_path / "streams").mkdir()
    here = "from ..abc import TaskGroup\n\n\nasync def run(group: TaskGroup):\n    \n"
    index = ProjectIndex([tmp_path])
    index.crawl_now()
    context = ProjectContext(index)
    path = tmp_path.resolve() / "streams" / "stapled.py"
    files = context.gather(path, language_for_id("python"), here, len(here) - 1, ContextBudget(300))
    assert [f.path for f in files] == ["abc/_tasks.py"]


def test_a_file_shown_for_its_signatures_and_for_similar_code_has_one_header(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    context = ProjectContext(ProjectIndex([root]))
    offset = REPORT.index("total = ") + len("total = ")
    files = context.gather(
        root.resolve() / "shop/report.py", language_for_id("python"), REPORT, offset, ContextBudget(300)
    )
    assert [f.path for f in files] == ["shop/billing.py"]
    text = files[0].text
    assert "def compute_total(invoice, tax_rate=0.2):" in text and "return 1" in text
