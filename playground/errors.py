"""Typed errors of the core: each has a short title and a message a person can act on.

The UI turns them into a notification in one place; the CLI prints ``title: message`` on stderr and
exits with status 2.
"""

from __future__ import annotations


class PlaygroundError(Exception):
    """Base of every error the core raises on purpose."""

    title = "Error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return f"{self.title}: {self.message}"


class ModelFileError(PlaygroundError):
    """The model file is missing, unreadable, not a GGUF, or not the file we expected."""

    title = "Model file"


class ModelLoadError(PlaygroundError):
    """llama.cpp refused to load the model or create a context."""

    title = "Model load"


class PromptTooLongError(PlaygroundError):
    """The prompt does not fit in the context window."""

    title = "Prompt too long"


class InvalidParameterError(PlaygroundError):
    """A sampler or generation parameter is out of range."""

    title = "Invalid parameter"


class GenerationError(PlaygroundError):
    """Decoding failed part-way; the tokens already produced are kept."""

    title = "Generation failed"


class BackendError(PlaygroundError):
    """A remote backend failed: connection, HTTP status, or malformed stream."""

    title = "Backend"


class SessionFileError(PlaygroundError):
    """A session file is corrupt, truncated, too large or of an unknown version."""

    title = "Session file"


class ConfigError(PlaygroundError):
    """The configuration or a theme file is malformed."""

    title = "Config"
