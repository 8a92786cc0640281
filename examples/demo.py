"""A small module to try Inkling on: `inkling complete examples/demo.py:22:9`."""

from dataclasses import dataclass


@dataclass
class Point:
    x: float
    y: float


def distance(a: Point, b: Point) -> float:
    """Euclidean distance between two points."""
    dx = a.x - b.x
    dy = a.y - b.y
    return (dx * dx + dy * dy) ** 0.5


def centroid(points: list[Point]) -> Point:
    """The mean of a non-empty list of points."""
    n = len(points)
    sx = sum(p.x for p in points)
    sy = 
    return Point(sx / n, sy / n)
