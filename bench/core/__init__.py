"""Core: the registry, shared constants, the paper's reference numbers and provenance.

The bottom layer: imported by everything, importing nothing of the project."""
