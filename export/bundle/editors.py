"""The editor clients in the bundle: the VS Code extension as a .vsix, Neovim's plugin, Helix's config.

The .vsix is packaged from the checkout's `editors/vscode` with the `@vscode/vsce`
its package-lock.json pins (`npm ci` first when its packages are not installed);
packaging itself needs no network (tests/editors/test_vscode_extension.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from export.errors import ExportError


class EditorPackagingError(ExportError):
    pass


def package_vscode(source: Path, out_dir: Path, log: Callable[[str], None] = print) -> Path:
    extension = source / "editors" / "vscode"
    npm = shutil.which("npm")
    if npm is None:
        raise EditorPackagingError(
            "the VS Code extension is packaged with npm, which is not installed "
            "(apt-get install npm), or pass --no-vscode"
        )
    if not (extension / "node_modules" / ".bin" / "vsce").exists():
        log("installing the VS Code client's npm packages (npm ci)")
        _run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], extension)
    package = json.loads((extension / "package.json").read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    vsix = out_dir / f"{package['name']}-{package['version']}.vsix"
    log(f"packaging the VS Code extension: {vsix.name}")
    vsce = extension / "node_modules" / ".bin" / "vsce"
    flags = ["--no-dependencies", "--skip-license", "--allow-missing-repository"]
    _run([str(vsce), "package", *flags, "-o", str(vsix)], extension)
    return vsix


def copy_terminal_editors(source: Path, out_dir: Path) -> list[Path]:
    """Neovim's plugin folder and Helix's languages.toml, as the checkout has them."""
    editors = source / "editors"
    shutil.copytree(editors / "neovim", out_dir / "neovim", ignore=shutil.ignore_patterns(".*"))
    (out_dir / "helix").mkdir(parents=True, exist_ok=True)
    shutil.copy2(editors / "helix" / "languages.toml", out_dir / "helix" / "languages.toml")
    return [out_dir / "neovim", out_dir / "helix"]


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EditorPackagingError(
            f"`{Path(command[0]).name} {' '.join(command[1:3])}` failed in {cwd}:\n"
            + (result.stdout + result.stderr)[-3000:]
        )
