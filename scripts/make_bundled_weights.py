"""Export a training run as the bundled demo weights: float16, recalibrated, with a card.

The bundled weights (issue 16) were made in two stages (2-core CPU, torch 2.13.0)::

    stac-coh simulate runs/sim-rand --randomize --scenes 240 --size 384 --seed 0
    stac-coh train runs/sim-rand --out runs/main --input-mode wide-masked \
        --augment-gain-db 6 --augment-relative-db 1.5 --augment-ramp-db 2 \
        --augment-nodata 0.3 --init runs/init-round1.safetensors --lr 3e-4 \
        --steps 3000 --patch 64 --batch 8 --seed 0 --threads 1 --val-every 250 \
        --checkpoint-every 100 --resume          # resumable; ran across interruptions
    stac-coh simulate runs/sim-rand-480 --randomize --scenes 480 --size 384 --seed 0
    stac-coh train runs/sim-rand-480 --out runs/stage2/main --input-mode wide-masked \
        --augment-gain-db 6 --augment-relative-db 1.5 --augment-ramp-db 2 \
        --augment-nodata 0.3 --init runs/main/model.safetensors --lr 1e-4 --warmup 50 \
        --steps 1500 --patch 64 --batch 8 --seed 1 --threads 1 --val-every 250 \
        --checkpoint-every 100 --resume
    .venv/bin/python scripts/make_bundled_weights.py --run runs/stage2/main

``runs/init-round1.safetensors`` is the first round's bundled file (git show
fc14cfb:stac_coh/data/weights/stac-coh-sim-demo.safetensors); the second stage starts
from the first stage's best checkpoint (``runs/main/model.safetensors``) and trains on
twice the scenes (seeds 0-479: the first 240 are the first stage's). This script rounds
the run's best checkpoint to float16, recalibrates its uncertainty (``--views`` test-time
views, default 1: two views cost 2x and gained about 1 % in likelihood here) on the
calibration setting (``terrain`` scenes, seeds 30000-30009, 224 px, with gains), measures
the training domain over the training scenes with the input-domain guard's estimator
(widened by the gain augmentation), and writes the weights and card; the card's command
lists every stage, found by following each run's ``--init`` back to a file no run wrote.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from stac_coh.model.card import ModelCard, Provenance, UncertaintyHead
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weight_sources import BUNDLED_WEIGHTS_DIR
from stac_coh.model.weights import save_weights
from stac_coh.science.calibrate import collect_components, fit_uncertainty, training_domain
from stac_coh.science.checkpoint import load_checkpoint
from stac_coh.science.datasets import read_dataset
from stac_coh.science.randomize import simulate_randomized
from stac_coh.science.settings import calibration_randomization, exclude_settings

CALIBRATION_SEED = 30_000  # as benchmarks/eval_held_out.py
NOTES = (
    "Trained on SIMULATED data by stac-coh, for demonstration and tests; not a model of real "
    "Sentinel-1 coherence: import the published weights for real use (stac-coh weights "
    "import-keras / hf://). Input preprocessing is stac-coh's 'wide-masked' (dB window "
    "[-45, 15], nodata channel), NOT the published one; the card says so and stac-coh "
    "applies it. Uncertainty: the second head, recalibrated on held-out 'terrain' scenes "
    "({views} test-time view(s), {views}x the forward passes of one)."
)
TRAINED_ON = (
    "{scenes} domain-randomised simulated Sentinel-1-like VV pairs (384x384 px, 10 m; seeds "
    "0-{last}): looks 1.5-8 (Gaussian, sinc and independent impulse responses, 1.5-3 samples "
    "per resolution cell, correlated pixels or not), misregistration 0-0.5 px (40 % "
    "unshifted), baselines 6-48 days, coherence decoupled from brightness in 30 %, varied "
    "texture, per-date nodata edges up to 40 px apart, 'parcels' and 'fields' landscapes; "
    "patches augmented with +-6 dB common gain, +-1.5 dB relative gain, +-2 dB ramps and "
    "one-date nodata. Label: TRUE coherence of the simulation. Fine-tuned from the "
    "round-1 weights (one speckle regime) in {stages} stage(s): {steps}."
)


def train_command(config: dict) -> str:
    """The ``stac-coh train`` command line a run's ``config.json`` records."""
    return (
        f"stac-coh train {config['data']} --out {config['out']} --input-mode "
        f"{config['input_mode']} --augment-gain-db {config['augment_gain_db']} "
        f"--augment-relative-db {config['augment_relative_db']} --augment-ramp-db "
        f"{config['augment_ramp_db']} --augment-nodata {config['augment_nodata']} --init "
        f"{config['init']} --lr {config['lr']} --warmup {config['warmup']} --steps "
        f"{config['steps']} --patch {config['patch']} --batch {config['batch']} --seed "
        f"{config['seed']} --threads 1 --val-every {config['val_every']} --checkpoint-every "
        f"{config['checkpoint_every']} --resume"
    )


def stages(run: Path) -> list[dict]:
    """The configs of every run that led to ``run``, first stage first."""
    chain = [json.loads((run / "config.json").read_text())]
    while chain[0].get("init") and (Path(chain[0]["init"]).parent / "config.json").exists():
        chain.insert(0, json.loads((Path(chain[0]["init"]).parent / "config.json").read_text()))
    return chain


def main() -> None:
    """Export the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/main"))
    parser.add_argument(
        "--out", type=Path, default=BUNDLED_WEIGHTS_DIR / "stac-coh-sim-demo.safetensors"
    )
    parser.add_argument(
        "--calibration", type=Path, default=Path("runs/eval-held-out/sets/calibration")
    )
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--interim", action="store_true", help="Mark as an unfinished run.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = json.loads((args.run / "config.json").read_text())
    ckpt = args.run / "checkpoints"
    stem = ckpt / ("best" if (ckpt / "best.json").exists() else "last")
    checkpoint = load_checkpoint(stem)
    step = checkpoint.meta["step"]
    from stac_coh.model.preprocess import preset

    prep = preset(config["input_mode"])
    model = ResUNet(base=config["base"], in_channels=prep.channels)
    model.load_state_dict(checkpoint.model_state)
    model = model.half().float().eval()  # calibrate what is shipped: the float16 values

    if not (args.calibration / "index.json").exists():
        simulate_randomized(
            args.calibration,
            scenes=10,
            size=224,
            seed=CALIBRATION_SEED,
            randomization=calibration_randomization(),
        )
    draft = ModelCard(
        name="stac-coh-sim-demo", preprocessing=prep, uncertainty=UncertaintyHead(calibrated=True)
    )
    comp = collect_components(model, draft, read_dataset(args.calibration), views=args.views)
    uncertainty = fit_uncertainty(comp, draft.uncertainty, args.views)
    entries = read_dataset(config["data"])
    excluded = [n for n in config.get("exclude", "").split(",") if n]
    entries = exclude_settings(entries, excluded) if excluded else entries
    domain = training_domain(
        entries,
        gain_db=config["augment_gain_db"],
        relative_db=config["augment_relative_db"],
        description=(
            "stac-coh simulated pairs of 1.5-8 looks (several impulse responses, correlated "
            "pixels or not) with +-6 dB common and +-1.5 dB relative gains; ranges are the "
            "input-domain guard's own estimates over the training scenes (2-98 % for looks)."
        ),
    )
    chain = stages(args.run)
    scene_counts = [len(read_dataset(stage["data"])) for stage in chain]
    commands = []
    for stage, scenes in zip(chain, scene_counts, strict=True):
        commands.append(
            f"stac-coh simulate {stage['data']} --randomize --scenes {scenes} --size 384 --seed 0"
        )
        commands.append(train_command(stage))
    commands.append(f"python scripts/make_bundled_weights.py --run {config['out']}")
    steps = "; ".join(
        f"{c['steps']} steps on {n} scenes at lr {c['lr']:g}"
        for c, n in zip(chain, scene_counts, strict=True)
    )
    notes = (
        NOTES.format(views=args.views)
        + f" Best validation checkpoint of the last stage: step {step} of {config['steps']}."
    )
    if args.interim:
        notes = "INTERIM (training still running). " + notes
    card = replace(
        draft,
        uncertainty=uncertainty,
        training_domain=domain,
        provenance=Provenance(
            source="stac-coh train",
            trained_on=TRAINED_ON.format(
                scenes=len(entries), last=len(entries) - 1, stages=len(chain), steps=steps
            ),
            license="Apache-2.0",
            citation=(
                "Architecture of Sica, Pulella, Schmitt: Beyond Backscatter: InSAR coherence "
                "from detected SAR images, arXiv 2606.07374 (2026)"
            ),
            notes=notes,
            command=" && ".join(commands) + "  (float16; torch 2.13.0 CPU)",
        ),
    )
    path = save_weights(model, card, args.out, dtype=torch.float16)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {stem.name} step {step}")
    print(
        json.dumps(
            {
                "uncertainty": card.to_dict()["uncertainty"],
                "domain": card.to_dict()["training_domain"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
