"""The exception types cnnlab raises for user mistakes and bad input.

Every error a user can cause derives from :class:`CnnlabError`; the CLI turns these into a
one-line message and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class CnnlabError(Exception):
    """Base class for errors caused by input, configuration or files (not by bugs)."""


class ConfigError(CnnlabError):
    """An unknown key, a wrong type or an out-of-range value in the configuration."""


class DataError(CnnlabError):
    """The dataset folder, manifest or split cannot be used as given."""


class ImageLoadError(CnnlabError):
    """One image file cannot be decoded; carries the path and a short reason."""

    def __init__(self, path: object, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        msg = f"{self.path}: {reason}" + (f" ({detail})" if detail else "")
        super().__init__(msg)


class ModelError(CnnlabError):
    """An unknown model name or an invalid architecture specification."""


class WeightsError(CnnlabError):
    """Pretrained weights that cannot be found, loaded or matched to the model."""


class CheckpointError(CnnlabError):
    """A checkpoint that is incomplete, unsafe or does not match the run."""


class RunError(CnnlabError):
    """A run folder that is missing or does not follow the run-folder contract."""


class OutputError(CnnlabError):
    """An output folder or file (runs_dir, --out) that cannot be created or written."""


class ParityError(CnnlabError):
    """An exported model whose outputs differ from PyTorch's by more than the tolerance."""

    def __init__(self, message: str, record: dict) -> None:
        super().__init__(message)
        self.record = record


class Interrupted(KeyboardInterrupt):
    """Work stopped by Ctrl-C (SIGINT) or SIGTERM, with what it kept and how to continue.

    A ``KeyboardInterrupt``, so everything that cleans up after Ctrl-C does so; the CLI
    prints ``interrupted: KEPT; continue with: RESUME`` and exits ``128 + signum``.
    """

    def __init__(self, signum: int, kept: str = "", resume: str = "") -> None:
        super().__init__(kept)
        self.signum, self.kept, self.resume = signum, kept, resume

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        text = self.kept
        if self.resume:
            text += f"; continue with: {self.resume}"
        return text


def brief(text: str, limit: int = 200) -> str:
    """A library's message as one line of at most ``limit`` characters, cut at a word (never
    mid-word) with `` …``: MLflow's and torch's messages span many lines.

    >>> brief("bad\\n  value"), brief("one two three", 9)
    ('bad value', 'one two …')
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + " …"


@contextlib.contextmanager
def interrupted_as(kept: str, resume: str) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) inside becomes the :class:`Interrupted` of the work around it: a
    study or tune, not the run it was training, is what the user continues."""
    try:
        yield
    except KeyboardInterrupt as exc:
        raise Interrupted(getattr(exc, "signum", signal.SIGINT), kept, resume) from None
