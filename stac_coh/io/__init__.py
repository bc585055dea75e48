"""Input and output: HTTP sessions, GDAL environment, signing, storage, COG encoding."""
