"""empathy-harness: measure and improve empathy in small language models."""

__version__ = "0.1.0"
