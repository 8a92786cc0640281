"""The shipped adapter: `inkling model build` reproduces its recorded hash here, and the
server picks the result up by itself and fills a hole in the middle of a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from export.build import DEFAULT_ADAPTER_DIR, BuildResult, has_adapter
from lsp_server.lsp_client import InklingClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not has_adapter(DEFAULT_ADAPTER_DIR), reason="no adapter shipped yet"),
]

SOURCE = (
    "def area(width: float, height: float) -> float:\n"
    '    """The area of a width x height rectangle."""\n'
    "    return \n"  # the hole: line 2, after "return "
    "\n"
    "\n"
    "def perimeter(width: float, height: float) -> float:\n"
    '    """The perimeter of a width x height rectangle."""\n'
    "    return 2 * (width + height)\n"
)


async def test_the_built_default_fills_a_hole_with_the_suffix_in_view(
    built_default: BuildResult, tmp_path: Path
) -> None:
    built = built_default  # its build checked the recorded sha256
    assert not built.recorded
    cache = built.path.parent.parent

    env = {k: v for k, v in os.environ.items() if k != "INKLING_MODEL"} | {"INKLING_CACHE": str(cache)}
    client = InklingClient(env=env)
    # What the model writes is under test, not how fast: on a loaded machine the
    # default inline budget cut the answer to its first token ("2").
    await client.start({"timeBudgetInlineMs": 60_000, "timeBudgetBlockMs": 60_000})
    try:
        status = await client.wait_ready(timeout=120)
        assert status["model"] == str(built.path) and status["template"].startswith("inkling"), status
        uri = (tmp_path / "shapes.py").as_uri()
        client.open(uri, "python", SOURCE)
        answer = await client.inline(uri, 2, len("    return "))
    finally:
        assert await client.stop() == 0
    assert "width" in answer and "height" in answer, answer
    assert "perimeter" not in answer and "\n" not in answer.strip(), answer
