"""Export a training run's best checkpoint as the bundled demo weights (float16 + card).

The bundled weights were made by these three steps (2-core CPU, torch 2.13.0)::

    stac-coh simulate runs/sim-train --scenes 64 --size 512 --seed 0 --misregistration 0.4
    stac-coh train runs/sim-train --out runs/bundle-base32 --base 32 --patch 64 --batch 8 \
        --steps 3000 --seed 0 --threads 2 --val-every 250 --checkpoint-every 100
    .venv/bin/python scripts/make_bundled_weights.py --run runs/bundle-base32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from stac_coh.model.card import ModelCard, Provenance, UncertaintyHead
from stac_coh.model.weight_sources import BUNDLED_WEIGHTS_DIR
from stac_coh.science.checkpoint import load_checkpoint
from stac_coh.science.train import TrainConfig, export_run

NOTES = (
    "trained on simulated data by stac-coh; for demonstration and tests; import the "
    "published weights for real use (stac-coh weights import-keras / hf://)."
)
SIMULATE = "stac-coh simulate runs/sim-train --scenes 64 --size 512 --seed 0 --misregistration 0.4"


def main() -> None:
    """Export the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/bundle-base32"))
    parser.add_argument(
        "--out", type=Path, default=BUNDLED_WEIGHTS_DIR / "stac-coh-sim-demo.safetensors"
    )
    parser.add_argument("--interim", action="store_true", help="Mark as an unfinished run.")
    args = parser.parse_args()
    config = TrainConfig(**json.loads((args.run / "config.json").read_text()))
    ckpt = args.run / "checkpoints"
    stem = ckpt / ("best" if (ckpt / "best.json").exists() else "last")
    step = load_checkpoint(stem).meta["step"]
    train_cmd = (
        f"stac-coh train {config.data} --out {config.out} --base {config.base} "
        f"--patch {config.patch} --batch {config.batch} --steps {config.steps} "
        f"--seed {config.seed} --threads 2 --val-every {config.val_every} "
        f"--checkpoint-every {config.checkpoint_every}"
    )
    notes = NOTES + f" Best validation checkpoint: step {step} of {config.steps}."
    if args.interim:
        notes = "INTERIM (training still running). " + notes
    card = ModelCard(
        name="stac-coh-sim-demo",
        uncertainty=UncertaintyHead(calibrated=True),
        provenance=Provenance(
            source="stac-coh train",
            trained_on=(
                "64 simulated Sentinel-1-like 12-day VV pairs (512x512 px, 10 m; seeds 0-63; "
                "misregistration up to 0.4 px), label: TRUE coherence of the simulation "
                "(not boxcar estimates)"
            ),
            license="Apache-2.0",
            citation=(
                "Architecture of Sica, Pulella, Schmitt: Beyond Backscatter: InSAR coherence "
                "from detected SAR images, arXiv 2606.07374 (2026)"
            ),
            notes=notes,
            command=(
                f"{SIMULATE} && {train_cmd} && python scripts/make_bundled_weights.py "
                f"--run {config.out}  (float16; torch 2.13.0 CPU)"
            ),
        ),
    )
    path = export_run(args.run, config, dtype=torch.float16, path=args.out, card=card)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {stem.name} step {step}")


if __name__ == "__main__":
    main()
