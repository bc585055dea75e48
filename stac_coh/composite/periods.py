"""The time periods a composite covers: meteorological seasons, custom months, or a range.

Seasons follow the Global Seasonal Sentinel-1 Interferometric Coherence data set
(Kellndorfer et al. 2022): December-February (DJF), March-May (MAM), June-August (JJA),
September-November (SON). The seasonal year ``Y`` runs from December ``Y-1`` to November
``Y``, so ``--year 2020`` means Dec 2019 - Nov 2020, as in that data set.

A pair belongs to the period that contains its reference (earlier) acquisition: a 48-day
pair that starts on 20 February is a winter pair even though it ends in April.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from stac_coh.errors import InputError

__all__ = ["SEASONS", "Period", "parse_months", "plan_periods"]

SEASONS: dict[str, tuple[int, int, int]] = {
    "DJF": (12, 1, 2),
    "MAM": (3, 4, 5),
    "JJA": (6, 7, 8),
    "SON": (9, 10, 11),
}
"""Meteorological seasons and their months, in the order of the seasonal year."""


@dataclass(frozen=True)
class Period:
    """One composite period: ``start`` (inclusive) to ``stop`` (exclusive), in UTC."""

    label: str
    """Name in item ids and titles: ``2020-DJF``, ``2020-M04-09``, ``20200101-20201231``."""
    start: datetime
    """First instant of the period."""
    stop: datetime
    """First instant after the period."""
    season: str | None = None
    """``DJF``/``MAM``/``JJA``/``SON`` when the period is a season."""

    def contains(self, when: datetime) -> bool:
        """Whether ``when`` lies inside the period."""
        return self.start <= when < self.stop

    @property
    def end(self) -> datetime:
        """Last whole second of the period (the STAC ``end_datetime``)."""
        return self.stop - timedelta(seconds=1)


def plan_periods(
    *,
    year: int | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    seasons: str | Sequence[str] | None = None,
    months: str | Sequence[int] | None = None,
) -> tuple[Period, ...]:
    """The periods of ``--year`` or ``--start/--end``, cut into seasons or months if asked.

    ``--year Y`` alone means the four seasons of seasonal year Y. ``--start/--end`` alone
    is one period (both days included); with ``--season`` or ``--months`` it is each
    such season that overlaps the range, clipped to it.
    """
    if (year is None) == (start is None and end is None):
        raise InputError("Give either --year YEAR or both --start and --end (not both).")
    if seasons is not None and months is not None:
        raise InputError("Give --season or --months, not both.")
    groups = _month_groups(seasons, months)
    if year is not None:
        if not 1990 <= year <= 2200:
            raise InputError(f"--year {year} is not a plausible Sentinel-1 year.")
        groups = groups or [(name, SEASONS[name]) for name in SEASONS]
        return tuple(_season_of_year(year, name, mon) for name, mon in groups)
    if start is None or end is None:
        raise InputError("Give both --start and --end (days, e.g. 2026-03-01).")
    first, last = _day(start, "--start"), _day(end, "--end")
    if last < first:
        raise InputError(f"--end {last} is before --start {first}.")
    lo, hi = _midnight(first), _midnight(last + timedelta(days=1))
    if not groups:
        return (Period(f"{first:%Y%m%d}-{last:%Y%m%d}", lo, hi),)
    periods = []
    for y in range(first.year, last.year + 2):
        for name, mon in groups:
            p = _season_of_year(y, name, mon)
            if p.stop > lo and p.start < hi:
                periods.append(Period(p.label, max(p.start, lo), min(p.stop, hi), p.season))
    return tuple(sorted(periods, key=lambda p: p.start))


def parse_months(text: str | Sequence[int]) -> tuple[int, ...]:
    """``4-9``, ``11,12,1,2`` or ``6`` -> consecutive months (cyclic: December to January)."""
    if isinstance(text, str):
        months: list[int] = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            m = re.fullmatch(r"(\d{1,2})(?:-(\d{1,2}))?", part)
            if not m:
                raise InputError(f"--months {text!r}: write months as 4-9 or 11,12,1,2.")
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            months.extend(_cycle(a, b, text))
    else:
        months = [int(v) for v in text]
    if not months or any(not 1 <= v <= 12 for v in months):
        raise InputError(f"--months {text!r}: months are 1..12, e.g. 4-9.")
    if len(set(months)) != len(months) or any(
        (b - a) % 12 != 1 for a, b in itertools.pairwise(months)
    ):
        raise InputError(
            f"--months {text!r} must be consecutive months (one period), e.g. 4-9 or 11-2."
        )
    return tuple(months)


def _cycle(a: int, b: int, text: str) -> list[int]:
    """Months a..b, wrapping past December."""
    if not (1 <= a <= 12 and 1 <= b <= 12):
        raise InputError(f"--months {text!r}: months are 1..12.")
    return [((a - 1 + k) % 12) + 1 for k in range((b - a) % 12 + 1)]


def _month_groups(
    seasons: str | Sequence[str] | None, months: str | Sequence[int] | None
) -> list[tuple[str, tuple[int, ...]]]:
    """(name, months) of each requested season, or of the one custom month range."""
    if months is not None:
        mon = parse_months(months)
        return [(f"M{mon[0]:02d}-{mon[-1]:02d}", mon)]
    if seasons is None:
        return []
    names = _names(seasons)
    unknown = [n for n in names if n not in SEASONS]
    if unknown or not names:
        raise InputError(
            f"--season {','.join(unknown) or '(empty)'} is not a season; "
            f"use {', '.join(SEASONS)} (comma-separated)."
        )
    return [(n, SEASONS[n]) for n in SEASONS if n in names]


def _names(seasons: str | Iterable[str]) -> list[str]:
    """Upper-cased season names from ``DJF,JJA`` or a list."""
    parts = seasons.split(",") if isinstance(seasons, str) else list(seasons)
    return [p.strip().upper() for p in parts if p.strip()]


def _season_of_year(year: int, name: str, months: tuple[int, ...]) -> Period:
    """The period of ``months`` in seasonal year ``year`` (wrapping months start in Y-1)."""
    wraps = any(b < a for a, b in itertools.pairwise(months))
    first_year = year - 1 if wraps else year
    start = datetime(first_year, months[0], 1, tzinfo=UTC)
    last_year = year if wraps else first_year
    stop_month = months[-1] % 12 + 1
    stop = datetime(last_year + (months[-1] == 12), stop_month, 1, tzinfo=UTC)
    return Period(f"{year}-{name}", start, stop, name if name in SEASONS else None)


def _day(value: str | date, option: str) -> date:
    """A calendar day from ``2026-03-01`` or a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise InputError(f"{option} {value!r} is not a day; write YYYY-MM-DD.") from None


def _midnight(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
