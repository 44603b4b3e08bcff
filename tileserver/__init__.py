"""Tile server: DZI, IIIF Image API 3.0/2.1 and extras over stored OME-Zarr pyramids."""
