"""The VS Code extension: one settings schema with the server, its own tests, a .vsix built offline.

`npm test` runs the extension's unit tests (a mocked `vscode` API) and its
integration test: the real extension code and the real vscode-languageclient
starting the real `inkling serve` with the real model (no VS Code binary can
be installed here, so a small stand-in hosts the client). `.ci/run` installs
the npm packages (`npm ci`); without them these tests skip (fail under CI).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from lsp_server.languages import language_for_id, supported_lsp_ids
from tests.requirements import require

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"
PACKAGE = json.loads((EXTENSION / "package.json").read_text())
NOT_VSCODE_IDS = {"c++"}  # an alias some clients send; VS Code calls it "cpp"


def _sync_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_settings", EXTENSION / "sync_settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _npm(
    *args: str, env: dict[str, str] | None = None, offline: bool = False
) -> subprocess.CompletedProcess[str]:
    require(shutil.which("npm") is not None, "npm", "apt-get install npm")
    require(
        (EXTENSION / "node_modules").is_dir(),
        "the VS Code client's npm packages",
        "(cd editors/vscode && npm ci --ignore-scripts)",
    )
    command = ["npm", *args]
    if offline and os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "--net", *command]  # no network at all, not even loopback
    return subprocess.run(
        command,
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )


def test_settings_schema_is_the_servers() -> None:
    """Run `python editors/vscode/sync_settings.py` after changing lsp_server/settings.py."""
    properties = PACKAGE["contributes"]["configuration"]["properties"]
    assert properties == _sync_module().expected_properties()


def test_languages_are_the_servers() -> None:
    events = PACKAGE["activationEvents"]
    languages = {event.removeprefix("onLanguage:") for event in events if event.startswith("onLanguage:")}
    assert languages == set(supported_lsp_ids()) - NOT_VSCODE_IDS
    assert all(language_for_id(language) is not None for language in languages)


def test_declared_commands_are_registered() -> None:
    declared = {command["command"] for command in PACKAGE["contributes"]["commands"]}
    source = (EXTENSION / "src" / "extension.ts").read_text()
    registered = set(re.findall(r"registerCommand\('([\w.]+)'", source))
    assert declared == registered == {"inkling.restart", "inkling.toggle", "inkling.showMenu"}


@pytest.mark.slow
def test_typescript_typechecks() -> None:
    result = _npm("run", "typecheck")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.model
def test_extension_unit_and_integration_tests(tmp_path: Path) -> None:
    result = _npm("test", env={"INKLING_PYTHON": sys.executable, "INKLING_STATE": str(tmp_path)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    counts = dict(re.findall(r"^# (pass|fail|skipped|cancelled) (\d+)$", output, re.MULTILINE))
    assert counts["fail"] == "0" and counts["skipped"] == "0" and counts["cancelled"] == "0", counts
    assert int(counts["pass"]) >= 20, counts
    # The integration test ran (and passed) rather than skipped.
    assert re.search(r"^ok \d+ - ghost text from the real server", output, re.MULTILINE), output[-3000:]


@pytest.mark.slow
def test_vsix_is_built_without_network() -> None:
    result = _npm("run", "package", offline=True)
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(EXTENSION / "out" / "inkling.vsix") as vsix:
        names = set(vsix.namelist())
        packaged = json.loads(vsix.read("extension/package.json"))
    assert "extension/out/extension.js" in names
    unwanted = ("extension/node_modules/", "extension/src/", "extension/test/")
    assert not any(name.startswith(unwanted) for name in names)
    assert packaged["contributes"] == PACKAGE["contributes"]
