"""The cross-file track on the real model: the same tasks with and without project context,
and the with-context prompt really holds the other file's definition."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lsp_server.engine import Engine
from lsp_server.evaluation.corpus import directory_corpora
from lsp_server.evaluation.crossfile import build_crossfile_tasks
from lsp_server.evaluation.runners import PipelineRunner, ProjectRunner
from lsp_server.settings import Settings

pytestmark = pytest.mark.model

SETTINGS = Settings(time_budget_inline_ms=60_000, time_budget_block_ms=60_000, log_buffers=True)

GEOMETRY = '''"""Plane geometry helpers."""

import math

UNIT_SCALE = 2.5


def rotate_point(point, angle_degrees, origin=(0.0, 0.0)):
    """Rotate a point around an origin."""
    radians = math.radians(angle_degrees)
    return point


def bounding_box(points, padding=0.0):
    """The smallest box around the points."""
    return points
'''
DRAWING = '''"""Drawing of shapes on a canvas."""

from plot.geometry import UNIT_SCALE, bounding_box, rotate_point


class Canvas:
    def __init__(self, width, height):
        self.width = width
        self.height = height
        self.shapes = []

    def add(self, shape):
        self.shapes.append(shape)

    def turn(self, shape, angle):
        turned = [rotate_point(point, angle, origin=shape.center) for point in shape.points]
        return turned

    def frame(self, shape):
        box = bounding_box(shape.points, padding=UNIT_SCALE)
        return box
'''


def test_the_same_tasks_run_with_and_without_project_context(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "plot").mkdir()
    (tmp_path / "plot" / "__init__.py").write_text('"""Plotting."""\n')
    (tmp_path / "plot" / "geometry.py").write_text(GEOMETRY)
    (tmp_path / "plot" / "drawing.py").write_text(DRAWING)
    tasks = build_crossfile_tasks(directory_corpora(tmp_path, ["python"]), splits=("dev", "test"), per_file=3)
    assert {t.names[0] for t in tasks} >= {"rotate_point", "bounding_box"}
    in_file, project = PipelineRunner(engine, SETTINGS, "in-file"), ProjectRunner(engine, SETTINGS)
    for task in tasks:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="lsp_server.pipeline"):
            alone = in_file.run(task)
            with_context = project.run(task)
        prompts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("prompt for")]
        assert len(prompts) == 2
        assert alone.error is None and with_context.error is None
        assert alone.context_files == () and with_context.context_files == ("plot/geometry.py",)
        assert with_context.definition_in_context
        # What the model saw: the signature from geometry.py, in front of the code, only with context.
        signature = "def rotate_point(point, angle_degrees, origin=(0.0, 0.0)):"
        assert signature not in prompts[0]
        assert signature in prompts[1]
        assert with_context.prompt_tokens > alone.prompt_tokens
