"""Reporting: database -> DataFrames of numbers (frames) -> one renderer per format.

Nothing here attacks or trains; it only reads what the jobs stored."""
