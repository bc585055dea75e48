"""Tile planning: which windows to read and which pixels each one writes. Pure, no I/O.

Two plans exist. ``plan_tiles`` cuts a scene into large core tiles, each read with a halo
so that a fully convolutional network sees all the context a core pixel depends on
(``fast`` mode). ``plan_reference`` reproduces the published patch tiling (128 x 128
patches, stride 32, last patch snapped to the border, Kaiser-weighted average) and groups
the patches into blocks, so the reference result can also be streamed.

Windows are in pixels of the output grid; read windows may extend past it (the reader
returns NaN there, which preprocessing turns into the same zeros the published code pads
with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "PatchBlock",
    "TileWindow",
    "kaiser_window_2d",
    "patch_starts",
    "plan_reference",
    "plan_tiles",
    "round_up",
]


@dataclass(frozen=True)
class TileWindow:
    """One unit of work: the core window it writes and the larger window it reads."""

    row_off: int
    """First row of the core (the pixels this tile writes)."""
    col_off: int
    """First column of the core."""
    height: int
    """Core rows."""
    width: int
    """Core columns."""
    read_row_off: int
    """First row read (core minus halo); may lie outside the grid only for padding."""
    read_col_off: int
    """First column read."""
    read_height: int
    """Rows read: core plus halo, padded to the predictor's multiple."""
    read_width: int
    """Columns read."""

    @property
    def crop_row(self) -> int:
        """Row of the core inside the read window."""
        return self.row_off - self.read_row_off

    @property
    def crop_col(self) -> int:
        """Column of the core inside the read window."""
        return self.col_off - self.read_col_off

    @property
    def read_shape(self) -> tuple[int, int]:
        """(read_height, read_width): tiles of equal read shape can share a batch."""
        return (self.read_height, self.read_width)

    def crop(self, array: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        """Cut the core out of an array whose last two axes are the read window."""
        r, c = self.crop_row, self.crop_col
        return array[..., r : r + self.height, c : c + self.width]


@dataclass(frozen=True)
class PatchBlock:
    """A block of the reference tiling: a core window and every patch that overlaps it."""

    window: TileWindow
    """Core to write; the read window is the union of the block's patches."""
    row_starts: tuple[int, ...]
    """Absolute first rows of the patches overlapping the core, ascending."""
    col_starts: tuple[int, ...]
    """Absolute first columns of those patches, ascending."""
    patch: int
    """Patch edge in pixels."""

    @property
    def patches(self) -> list[tuple[int, int]]:
        """Patch origins relative to the read window, row-major (the published order)."""
        r0, c0 = self.window.read_row_off, self.window.read_col_off
        return [(r - r0, c - c0) for r in self.row_starts for c in self.col_starts]


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def _split(length: int, tile: int, multiple: int) -> list[tuple[int, int]]:
    """Cut ``length`` into (start, size) runs of at most ``tile``, starts on ``multiple``.

    The runs are balanced (1040 with tile 1024 gives 528 + 512, not 1024 + 16), so no
    tile pays a full halo for a sliver of core.
    """
    count = math.ceil(length / tile)
    step = min(round_up(math.ceil(length / count), multiple), tile)
    runs, start = [], 0
    while start < length:
        runs.append((start, min(step, length - start)))
        start += step
    return runs


def _halo_axis(length: int, tile: int, halo: int, multiple: int) -> list[tuple[int, int, int, int]]:
    """Runs of one axis as (core start, core size, read start, read size).

    Every read has the same size, so every tile of a scene has one shape: batches fill and
    the allocator sees the same pattern for each tile. An axis that fits in
    ``tile + 2 * halo`` is one run. Otherwise inner cores get ``c <= tile`` and the two
    edge cores ``c + halo``, because an edge core has context on one side only; then all
    reads measure ``c + 2 * halo``. Reads never start before the grid and end at most at
    the grid's edge padded to ``multiple``: the padding a whole-scene pass would add. A
    read is shifted inward at the far edge (more context than needed changes nothing).
    Core and read starts are multiples of ``multiple``.
    """
    padded = round_up(length, multiple)
    if padded <= tile + 2 * halo:
        return [(0, length, 0, padded)]
    count = max(2, math.ceil((length - 2 * halo) / tile))
    core = round_up(math.ceil((length - 2 * halo) / count), multiple)
    read = core + 2 * halo
    starts = [0, *range(core + halo, length, core)][:count]
    runs = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else length
        read_start = min(max(start - halo, 0), padded - read)
        runs.append((start, stop - start, read_start, read))
    return runs


def plan_tiles(
    height: int, width: int, tile: int, halo: int, multiple: int = 16
) -> list[TileWindow]:
    """Cover a ``height`` x ``width`` grid with core tiles read with a ``halo``.

    Every grid pixel lies in exactly one core. Core origins are multiples of ``multiple``
    and the halo is rounded up to one, so every read window starts on the same phase of the
    network's pooling grid as a whole-scene pass (a U-Net is only shift-equivariant by
    multiples of 16).

    Args:
        height: grid rows.
        width: grid columns.
        tile: largest core edge; rounded up to ``multiple``.
        halo: context pixels on each side of a core; rounded up to ``multiple``.
        multiple: read windows start on and measure multiples of this (16 for the ResUNet).

    Returns:
        Tiles in row-major order.
    """
    _check_positive(height=height, width=width, tile=tile, multiple=multiple)
    if halo < 0:
        raise ValueError(f"halo must be >= 0, got {halo}")
    tile = round_up(tile, multiple)
    halo = round_up(halo, multiple)
    rows = _halo_axis(height, tile, halo, multiple)
    cols = _halo_axis(width, tile, halo, multiple)
    return [
        TileWindow(r, c, h, w, rr, rc, rh, rw) for r, h, rr, rh in rows for c, w, rc, rw in cols
    ]


def patch_starts(length: int, patch: int = 128, stride: int = 32) -> list[int]:
    """Patch origins of the published tiling along one axis.

    A stride-spaced run from 0 that stops before ``length - patch``, then one patch snapped
    to the far border; a single patch at 0 when the axis is not longer than a patch (the
    image is zero-padded up to the patch).
    """
    _check_positive(length=length, patch=patch, stride=stride)
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def _block_axis(
    length: int, block: int, patch: int, stride: int
) -> list[tuple[int, int, tuple[int, ...]]]:
    """Per core run along one axis: (start, size, starts of the patches overlapping it)."""
    starts = patch_starts(length, patch, stride)
    out = []
    for start, size in _split(length, block, 1):
        overlapping = tuple(s for s in starts if s < start + size and s + patch > start)
        out.append((start, size, overlapping))
    return out


def plan_reference(
    height: int, width: int, *, block: int = 1024, patch: int = 128, stride: int = 32
) -> list[PatchBlock]:
    """Group the published patch tiling into blocks of at most ``block`` x ``block`` core.

    A core pixel's value depends only on the patches covering it, and each block holds all
    of those, so block results stitched together equal the published whole-scene result.
    Patches on a block boundary are computed by both blocks; with the default block of
    1024 that costs about 20 % extra on scenes larger than a block and nothing on smaller
    ones.
    """
    _check_positive(block=block)
    rows = _block_axis(height, block, patch, stride)
    cols = _block_axis(width, block, patch, stride)
    blocks = []
    for r, h, rs in rows:
        for c, w, cs in cols:
            window = TileWindow(
                r, c, h, w, rs[0], cs[0], rs[-1] + patch - rs[0], cs[-1] + patch - cs[0]
            )
            blocks.append(PatchBlock(window, rs, cs, patch))
    return blocks


def kaiser_window_2d(size: int, beta: float) -> npt.NDArray[np.float32]:
    """Outer product of two 1-D Kaiser windows, float32 as in the published code."""
    one = np.kaiser(size, beta).astype(np.float32)
    return np.outer(one, one).astype(np.float32)


def _check_positive(**values: int) -> None:
    """Raise ValueError naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
