"""Seasonal coherence composites and the temporal decay model, from published pair items.

The stage after ``publish``: it reads a coherence catalog (a folder, ``s3://`` or a STAC
API), stacks the pairs that share a tile's pixel lattice, and publishes per tile, period
and polarisation the composite coherence of each baseline, the number of pairs behind
each pixel and the decay model (rho_inf, tau, fit RMSE) as COGs and STAC items in a
second collection of the same catalog. Only ``cli`` (and the demo wiring) imports it.

Modules: ``periods`` (seasons), ``pairs`` and ``sources`` (reading pair items), ``tiles``
(which pairs stack), ``stack`` (chunked statistics), ``decay`` (the fit), ``layers``,
``item`` and ``catalog`` (COGs, STAC), ``run`` (plan and units).
"""

from stac_coh.composite.decay import MIN_BASELINES, DecayFit, decay_model, fit_decay
from stac_coh.composite.periods import SEASONS, Period, plan_periods
from stac_coh.composite.run import (
    DEFAULT_BASELINES,
    CompositePlan,
    CompositeRequest,
    CompositeUnit,
    UnitResult,
    plan_composites,
    run_unit,
)
from stac_coh.composite.sources import PairSource, open_pair_source
from stac_coh.composite.tiles import TileStack, stack_key

__all__ = [
    "DEFAULT_BASELINES",
    "MIN_BASELINES",
    "SEASONS",
    "CompositePlan",
    "CompositeRequest",
    "CompositeUnit",
    "DecayFit",
    "PairSource",
    "Period",
    "TileStack",
    "UnitResult",
    "decay_model",
    "fit_decay",
    "open_pair_source",
    "plan_composites",
    "plan_periods",
    "run_unit",
    "stack_key",
]
