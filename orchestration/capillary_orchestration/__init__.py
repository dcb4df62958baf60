"""Dagster orchestration of the pipeline's shards (``definitions.py``; ``shards.py`` runs one)."""

__version__ = "0.1.0"
