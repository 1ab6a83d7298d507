"""Draws the Teams app icons (color.png 192x192, outline.png 32x32 with a
transparent background) as plain PNGs with zlib + struct, no image library.

Run `python manifest/teams/make_icons.py` to redraw them; the files are committed.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

ACCENT = (79, 70, 229)  # manifest accentColor #4F46E5
WHITE = (255, 255, 255)
Pixel = tuple[int, int, int, int]


def png(width: int, height: int, pixel: Callable[[float, float], Pixel]) -> bytes:
    """An RGBA PNG; `pixel(x, y)` gets coordinates scaled to 0..1."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows.extend(pixel((x + 0.5) / width, (y + 0.5) / height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _segment_distance(x: float, y: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(x - ax - t * dx, y - ay - t * dy)


def mark(x: float, y: float) -> bool:
    """A ring with a check mark inside: "task done"."""
    r = math.hypot(x - 0.5, y - 0.5)
    ring = 0.31 <= r <= 0.40
    check = min(
        _segment_distance(x, y, (0.33, 0.52), (0.45, 0.64)),
        _segment_distance(x, y, (0.45, 0.64), (0.68, 0.38)),
    )
    return ring or check <= 0.045


def color_pixel(x: float, y: float) -> Pixel:
    return (*WHITE, 255) if mark(x, y) else (*ACCENT, 255)


def outline_pixel(x: float, y: float) -> Pixel:
    return (*WHITE, 255) if mark(x, y) else (0, 0, 0, 0)


def main() -> None:
    here = Path(__file__).resolve().parent
    (here / "color.png").write_bytes(png(192, 192, color_pixel))
    (here / "outline.png").write_bytes(png(32, 32, outline_pixel))


if __name__ == "__main__":
    main()
