"""The job queue on Redis Streams: this package owns every Redis key of the system (see keys.py)."""
