"""Helpers for tests and benchmarks: real speech corpora and call-like fixtures."""
