"""Where output pixels lie: one pair's raster grid, and the fixed global tile grid.

:class:`OutputGrid` is the raster grid one work unit is processed on (CRS, affine,
shape). :mod:`stac_coh.grid.tiles` is the fixed, global tile grid that cuts every pair
into work units: MGRS 100 km squares, each in its own UTM zone (UPS near the poles),
with pixels on one lattice per zone, so every pair over a tile stacks in time.
"""

from stac_coh.grid.output import OutputGrid, PairReader, Transform, as_transform
from stac_coh.grid.tiles import (
    TILE_SIZE_M,
    CRSTileGrid,
    MGRSTileGrid,
    Tile,
    TileGrid,
    TilePiece,
    tile_grid_for,
)

__all__ = [
    "TILE_SIZE_M",
    "CRSTileGrid",
    "MGRSTileGrid",
    "OutputGrid",
    "PairReader",
    "Tile",
    "TileGrid",
    "TilePiece",
    "Transform",
    "as_transform",
    "tile_grid_for",
]
