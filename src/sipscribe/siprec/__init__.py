"""siprec layer."""
