"""intelligence layer."""
