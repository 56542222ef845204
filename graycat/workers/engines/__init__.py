"""Engines: what actually runs a job (llama.cpp for text)."""
