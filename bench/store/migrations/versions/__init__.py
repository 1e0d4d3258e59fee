"""One file per schema revision, oldest first (docs/databases.md: adding one)."""
