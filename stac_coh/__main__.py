"""``python -m stac_coh`` runs the command line (as the console script does)."""

from stac_coh.cli import main

main()
