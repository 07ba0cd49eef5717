"""playground: a terminal prompt playground for language models."""

__version__ = "0.1.0"
