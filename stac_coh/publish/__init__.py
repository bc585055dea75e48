"""Publish stage: COG assets, STAC items, the collection, finalize and serving."""
