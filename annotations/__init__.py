"""Annotations: geometries and terms on images, viewport queries, GeoJSON in and out."""
