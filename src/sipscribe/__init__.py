"""sipscribe: self-hosted conversation intelligence for phone calls."""

__version__ = "0.1.0"
