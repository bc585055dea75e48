"""Continental scale, metadata only: pairing, tiling, sharded manifests, bounded finalize.

One run over a continental area (Europe, 12 W - 40 E, 35 - 71 N) with synthetic but
realistic Sentinel-1 IW items: every relative orbit whose 250 km swath crosses the area,
ascending and descending, imaged every 6 days for a year (Sentinel-1A and -1C 6 days
apart), each pass a datatake of ~170 km slices from coast to coast with a few km of
jitter, items shaped like Planetary Computer's ``sentinel-1-rtc``. Defaults: baselines
6 and 12 days, 10 m pixels, MGRS 100 km tiles. It prints

- ``pairing_items_per_s=``: items -> pairs of passes (normalise, group, match, overlap);
- ``manifest_pairs=``: work units (pair, tile) planned and written, sharded;
- ``max_work_unit_mp=``: the largest unit's grid;
- ``child_peak_rss_mb=``: a fresh process reading one child's share of the full run;
- ``child_rss_ratio_10x=``: that peak for the full run / for a run of a tenth the units;
- ``finalize_items=`` and ``finalize_peak_rss_mb=``: finalize of a local catalog of that
  many published-like items, geoparquet export included, in a fresh process.

Usage: nice -n 10 python benchmarks/bench_scale.py [--work DIR] [--finalize-items N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AREA = (-12.0, 35.0, 40.0, 71.0)
START = datetime(2025, 1, 3, tzinfo=UTC)
DAYS = 366
KM_PER_DEG = 111.32


def track_line(orbit: int, ascending: bool) -> tuple[float, float]:
    """(longitude at 53 N, degrees of longitude per degree of latitude) of a track."""
    # 175 tracks repeat every 12 days; successive ones lie 360/175 degrees apart at the
    # equator. Near 53 N a ground track heads ~13 degrees off north.
    lon = -180.0 + (orbit * 360.0 / 175.0 + (97.0 if ascending else 0.0)) % 360.0
    return lon, (-0.38 if ascending else 0.38)


def slice_footprint(lon53: float, slope: float, lat0: float, lat1: float) -> list[list[float]]:
    """A 250 km wide quadrilateral of one slice between two latitudes."""
    ring = []
    for lat, side in ((lat0, -1), (lat0, 1), (lat1, 1), (lat1, -1)):
        centre = lon53 + slope * (lat - 53.0)
        half = 125.0 / (KM_PER_DEG * math.cos(math.radians(lat)))
        ring.append([round(centre + side * half, 6), round(lat, 6)])
    ring.append(ring[0])
    return ring


def make_item(
    orbit: int, ascending: bool, when: datetime, platform: str, k: int, ring: list[list[float]]
) -> dict[str, Any]:
    """One slice as Planetary Computer's sentinel-1-rtc publishes it (a few kB)."""
    abs_orbit = 50_000 + int((when - START).days * 175 / 12) + orbit
    datatake = int(hashlib.sha1(f"{orbit}{when:%Y%m%d}".encode()).hexdigest()[:6], 16)
    code = "S1A" if platform == "sentinel-1a" else "S1C"
    t = when + timedelta(seconds=25 * k)
    stamp = f"{t:%Y%m%dT%H%M%S}"
    item_id = f"{code}_IW_GRDH_1SDV_{stamp}_{stamp}_{abs_orbit:06d}_{datatake:06X}_rtc"
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    zone = min(60, max(1, int((sum(lons) / len(lons) + 180) // 6) + 1))
    base = f"https://sentinel1euwestrtc.blob.core.windows.net/sentinel1-grd-rtc/GRD/{t:%Y/%m/%d}/IW/DV/{item_id}"
    asset = {
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        "raster:bands": [{"nodata": -32768, "data_type": "float32", "spatial_resolution": 10.0}],
        "proj:shape": [20000, 27000],
        "proj:transform": [10.0, 0.0, 300000.0, 0.0, -10.0, 6000000.0],
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "datetime": t.isoformat().replace("+00:00", "Z"),
            "start_datetime": t.isoformat().replace("+00:00", "Z"),
            "end_datetime": (t + timedelta(seconds=25)).isoformat().replace("+00:00", "Z"),
            "platform": platform,
            "constellation": "Sentinel-1",
            "sat:orbit_state": "ascending" if ascending else "descending",
            "sat:relative_orbit": orbit,
            "sat:absolute_orbit": abs_orbit,
            "sat:platform_international_designator": "2014-016A",
            "s1:datatake_id": str(datatake),
            "s1:slice_number": str(k + 1),
            "s1:total_slices": "26",
            "s1:product_timeliness": "Fast-24h",
            "s1:instrument_configuration_ID": "7",
            "s1:processing_level": "1",
            "s1:resolution": "high",
            "sar:instrument_mode": "IW",
            "sar:frequency_band": "C",
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "GRD",
            "sar:center_frequency": 5.405,
            "sar:observation_direction": "right",
            "sar:looks_range": 5,
            "sar:looks_azimuth": 1,
            "sar:resolution_range": 20,
            "sar:resolution_azimuth": 22,
            "sar:pixel_spacing_range": 10,
            "sar:pixel_spacing_azimuth": 10,
            "proj:epsg": 32600 + zone,
        },
        "assets": {
            "vh": {
                **asset,
                "href": f"{base}/measurement/iw-vh.rtc.tiff",
                "title": "VH: vertical transmit, horizontal receive",
            },
            "vv": {
                **asset,
                "href": f"{base}/measurement/iw-vv.rtc.tiff",
                "title": "VV: vertical transmit, vertical receive",
            },
            "rendered_preview": {
                "href": f"https://planetarycomputer.microsoft.com/api/data/v1/item/preview.png?collection=sentinel-1-rtc&item={item_id}",
                "type": "image/png",
                "roles": ["overview"],
            },
        },
        "links": [
            {
                "rel": "collection",
                "href": "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-1-rtc",
                "type": "application/json",
            },
            {
                "rel": "self",
                "href": f"https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-1-rtc/items/{item_id}",
                "type": "application/geo+json",
            },
        ],
        "collection": "sentinel-1-rtc",
        "stac_extensions": [
            "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
    }


def continental_items(days: int = DAYS, seed: int = 0) -> list[dict[str, Any]]:
    """Every slice of every pass over the area during a year."""
    rng = random.Random(seed)
    west, south, east, north = AREA
    items = []
    for orbit in range(1, 176):
        for ascending in (True, False):
            lon53, slope = track_line(orbit, ascending)
            reach = 125.0 / (KM_PER_DEG * math.cos(math.radians(north)))
            lons = [lon53 + slope * (lat - 53.0) for lat in (south, north)]
            if max(lons) + reach < west or min(lons) - reach > east:
                continue
            hour = 17.5 if ascending else 5.8
            for day in range(0, days, 6):
                platform = "sentinel-1a" if (day // 6) % 2 == 0 else "sentinel-1c"
                when = START + timedelta(days=day, hours=hour, minutes=(orbit % 50) * 0.9)
                lat = south - 0.5 + rng.uniform(-0.05, 0.05)  # datatakes start a bit apart
                k = 0
                while lat < north + 0.5:
                    ring = slice_footprint(lon53, slope, lat, lat + 1.55)
                    items.append(make_item(orbit, ascending, when, platform, k, ring))
                    lat += 1.5  # slices overlap by ~5 km
                    k += 1
    return items


def peak_rss_mb() -> float:
    """Peak resident memory of this process since its exec (``VmHWM``, Linux).

    ``ru_maxrss`` would not do for a child: it keeps the high-water mark of the parent's
    image the child was forked from.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


HWM = """
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
"""

CHILD = (
    HWM
    + """
import sys
from stac_coh.search.manifest_io import read_manifest
head, child, per_job = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
manifest = read_manifest(head)
share = range(child * per_job, min((child + 1) * per_job, len(manifest.pairs)))
units = [manifest.pairs[i] for i in share]
items = {i: manifest.items[i] for u in units for i in u.item_ids}
assert units and len(items) >= 2
print(hwm())
"""
)

FINALIZE = (
    HWM
    + """
import sys
from stac_coh.io.storage import open_store
from stac_coh.publish.finalize import finalize
result = finalize(open_store(sys.argv[1]), geoparquet=True)
print(result.items, hwm())
"""
)


def fresh(script: str, *args: str) -> str:
    """Run ``script`` in a fresh interpreter; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return done.stdout.strip()


def plan(work: Path, days: int) -> tuple[Path, Path, int, float, str]:
    """Pair, tile and write the run's manifest and a tenth-size one; their heads."""
    from stac_coh.io.storage import open_store
    from stac_coh.search.pairing import match_passes
    from stac_coh.search.query import SearchQuery
    from stac_coh.search.shards import write_sharded_manifest
    from stac_coh.search.tiling import iter_units

    items = continental_items(days)
    by_id = {it["id"]: it for it in items}
    query = SearchQuery.build(bbox=AREA, start="2025-01-01", end="2026-01-10", max_items=10**7)
    print(f"items={len(items)}", flush=True)
    started, cpu = time.perf_counter(), time.process_time()
    pairs, _, passes = match_passes(items, query)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"pairs={len(pairs)} passes={len(passes)} pairing_s={seconds:.1f} (cpu {cpu:.1f})")
    print(
        f"pairing_items_per_s={len(items) / seconds:.0f} (per cpu-second: {len(items) / cpu:.0f})",
        flush=True,
    )

    largest = [0.0, ""]

    def units() -> Any:
        for unit in iter_units(pairs, query):
            mp = unit.grid.width * unit.grid.height / 1e6
            if mp > largest[0]:
                largest[:] = [mp, unit.id]
            yield unit

    started, cpu = time.perf_counter(), time.process_time()
    full = write_sharded_manifest(
        open_store(work / "full"),
        "manifest.json",
        source=_source(),
        query=query.to_dict(),
        units=units(),
        items=by_id,
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"tiling_units_per_s={full.units / seconds:.0f} (per cpu-second: {full.units / cpu:.0f}; "
        f"tiled and written) manifest_gb={full.bytes / 1e9:.2f}",
        flush=True,
    )
    # The same run a tenth the size: its first units (same pairs, fewer of them).
    reread = __import__("stac_coh.search.manifest_io", fromlist=["read_manifest"]).read_manifest(
        work / "full" / "manifest.json"
    )
    n_small = full.units // 10
    tenth_info = write_sharded_manifest(
        open_store(work / "tenth"),
        "manifest.json",
        source=_source(),
        query=query.to_dict(),
        units=(reread.pairs[i] for i in range(n_small)),
        items=by_id,
    )
    del reread
    return (
        work / "full" / "manifest.json",
        work / "tenth" / "manifest.json",
        full.units,
        largest[0],
        f"{largest[1]} tenth={tenth_info.units}",
    )


def _source() -> Any:
    from stac_coh.search.manifest import SourceSpec

    return SourceSpec(
        "planetary-computer",
        "https://planetarycomputer.microsoft.com/api/stac/v1",
        "sentinel-1-rtc",
        {"VV": "vv", "VH": "vh"},
    )


def published_items(root: Path, n: int) -> None:
    """``n`` items shaped like stac-coh's, on MGRS tiles over the area, in a local store."""
    rng = random.Random(1)
    tiles = [
        f"{z}{b}{c}{r}"
        for z in range(29, 36)
        for b in "STUVW"
        for c in "UVWXYZ"
        for r in "ABCDEFGHJK"
    ]
    cid = "sentinel-1-coherence"
    for k in range(n):
        tile = tiles[k % len(tiles)]
        t0 = START + timedelta(days=6 * (k % 60), hours=rng.uniform(0, 20))
        t1 = t0 + timedelta(days=12)
        item_id = f"S1A-S1C_R{1 + k % 175:03d}D_{t0:%Y%m%d}_{t1:%Y%m%d}_VV_{tile}_{k:08x}"
        w, s = rng.uniform(-10, 29), rng.uniform(36, 69)
        ring = [[w, s], [w + 1, s], [w + 1, s + 0.9], [w, s + 0.9], [w, s]]
        assets = {
            name: {
                "href": f"./{item_id}_{name}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "file:size": 41_000_000,
                "file:checksum": "1220" + hashlib.sha256(f"{k}{name}".encode()).hexdigest(),
                "raster:bands": [
                    {
                        "nodata": 255,
                        "data_type": "uint8",
                        "scale": 0.004,
                        "offset": 0.0,
                        "unit": "1",
                        "spatial_resolution": 10.0,
                        "statistics": {
                            "minimum": 0,
                            "maximum": 250,
                            "mean": 120.5,
                            "stddev": 40.1,
                            "valid_percent": 93.2,
                        },
                    }
                ],
            }
            for name in ("coherence", "uncertainty", "visual")
        }
        item = {
            "type": "Feature",
            "stac_version": "1.1.0",
            "id": item_id,
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "bbox": [w, s, w + 1, s + 0.9],
            "properties": {
                "title": f"Coherence {t0:%Y-%m-%d} / {t1:%Y-%m-%d} R{1 + k % 175:03d} VV",
                "datetime": None,
                "start_datetime": t0.isoformat().replace("+00:00", "Z"),
                "end_datetime": t1.isoformat().replace("+00:00", "Z"),
                "platform": "sentinel-1a,sentinel-1c",
                "constellation": "sentinel-1",
                "sat:relative_orbit": 1 + k % 175,
                "sat:orbit_state": "descending",
                "coh:baseline_days": 12.0,
                "grid:code": f"MGRS-{tile}",
                "processing:lineage": "Coherence predicted by stac-coh " + "x" * 300,
                "coh:reference_item_ids": [f"S1A_IW_GRDH_1SDV_{t0:%Y%m%dT%H%M%S}_{k}_rtc"],
                "coh:secondary_item_ids": [f"S1C_IW_GRDH_1SDV_{t1:%Y%m%dT%H%M%S}_{k}_rtc"],
            },
            "assets": assets,
            "links": [
                {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../collection.json", "type": "application/json"},
                {
                    "rel": "derived_from",
                    "href": f"https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-1-rtc/items/x{k}",
                    "type": "application/geo+json",
                },
            ],
            "stac_extensions": ["https://stac-extensions.github.io/grid/v1.1.0/schema.json"],
            "collection": cid,
        }
        folder = root / cid / item_id
        folder.mkdir(parents=True)
        (folder / f"{item_id}.json").write_text(json.dumps(item, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder (default: temp).")
    parser.add_argument("--finalize-items", type=int, default=100_000)
    parser.add_argument("--pairs-per-job", type=int, default=8)
    parser.add_argument("--days", type=int, default=DAYS, help="Days of acquisitions (a year).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.work) as tmp:
        work = Path(tmp)
        full, tenth, n_units, max_mp, note = plan(work, args.days)
        print(f"manifest_pairs={n_units}")
        print(f"max_work_unit_mp={max_mp:.1f} ({note})", flush=True)
        from stac_coh.batch.plan import plan_run

        run = plan_run(n_units, args.pairs_per_job, "bench")
        child = run.children // 2
        rss_full = float(fresh(CHILD, str(full), str(child), str(args.pairs_per_job)))
        small_child = min(child, (n_units // 10) // args.pairs_per_job - 1)
        rss_tenth = float(fresh(CHILD, str(tenth), str(small_child), str(args.pairs_per_job)))
        print(
            f"children={run.children} array_jobs={len(run.jobs)} pairs_per_job={args.pairs_per_job}"
        )
        print(f"child_peak_rss_mb={rss_full:.0f} (tenth-size run: {rss_tenth:.0f})")
        print(f"child_rss_ratio_10x={rss_full / rss_tenth:.3f}", flush=True)
        for path in (work / "full", work / "tenth"):
            for f in path.iterdir():
                f.unlink()
        started = time.perf_counter()
        published_items(work / "catalog", args.finalize_items)
        print(f"(wrote {args.finalize_items} items in {time.perf_counter() - started:.0f} s)")
        started = time.perf_counter()
        items, rss = fresh(FINALIZE, str(work / "catalog")).split()
        print(f"finalize_items={items}")
        took = time.perf_counter() - started
        print(f"finalize_peak_rss_mb={float(rss):.0f} (in {took:.0f} s, geoparquet included)")
    print(f"bench_peak_rss_mb={peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
