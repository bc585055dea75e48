"""Search stage: STAC queries, sources, acquisitions, pairing and the manifest."""
