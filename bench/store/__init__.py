"""Storage: the results database schema and connection, checkpoint files, and the one
"check the hash, then build the model" path."""
