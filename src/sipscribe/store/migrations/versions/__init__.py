"""Migration scripts, one per schema change, oldest first (``0001_…``)."""
