"""delivery layer."""
