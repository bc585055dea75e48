"""Load stage: the two images of a pair on one output grid (STAC items, files, GRD)."""
