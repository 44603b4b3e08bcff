"""Content-based retrieval: descriptors of annotated regions, nearest neighbours and
term suggestions, inside PostgreSQL (pgvector when available)."""
