"""Graycat AI Server: one authenticated HTTP gateway in front of a Redis job queue and inference workers."""

__version__ = "0.1.0"
