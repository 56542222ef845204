"""Thin HTTP handlers, one module per dialect."""
