"""The README stays true: its settings table is the settings table."""

from pathlib import Path

from lsp_server.settings import reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_settings_table_matches_the_code() -> None:
    text = README.read_text()
    start = text.index("<!-- settings-table:start -->\n") + len("<!-- settings-table:start -->\n")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end].strip() == reference_markdown()


def test_readme_commands_are_the_ci_commands() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest" in README.read_text()
    assert ".venv/bin/python -m pytest" in ci
