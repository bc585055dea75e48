"""``python -m stac_coh.cli`` runs the command line (as the console script does)."""

from stac_coh.cli import main

main()
