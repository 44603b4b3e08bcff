"""The shared slide model: OME-Zarr layout contract, tile math and reader.

No aiohttp, no asyncpg here: converters, the tile server and annotations all
import this package, never each other.
"""
