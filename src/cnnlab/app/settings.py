"""What one app server may show: its runs folder, the dataset folders it was given, limits.

The launcher (``cnnlab app``) passes these to the Streamlit process in environment variables,
the one channel that reaches a Streamlit script unchanged (and that tests can set). Only the
runs folder and the folders named on the command line are browsable: a page never opens a
path a visitor typed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.errors import CnnlabError

ENV_RUNS = "CNNLAB_APP_RUNS_DIR"
ENV_FOLDERS = "CNNLAB_APP_FOLDERS"  # os.pathsep-separated dataset folders
ENV_MAX_UPLOAD = "CNNLAB_APP_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 10  # per file; a photo is a few MB, Streamlit's own default is 200


class AccessError(CnnlabError):
    """A folder the app was not given on the command line."""


@dataclass(frozen=True)
class AppSettings:
    """The app server's settings, read once per script run from the environment."""

    runs_dir: Path
    folders: tuple[Path, ...] = field(default_factory=tuple)
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def to_env(self) -> dict[str, str]:
        """The environment variables that carry these settings to the server process."""
        return {
            ENV_RUNS: str(self.runs_dir),
            ENV_FOLDERS: os.pathsep.join(str(f) for f in self.folders),
            ENV_MAX_UPLOAD: str(self.max_upload_mb),
        }

    def check_folder(self, path: str | Path) -> Path:
        """``path`` resolved, if it is the runs folder, a given folder, or inside one."""
        real = Path(path).resolve()
        for root in (self.runs_dir, *self.folders):
            if real == root or real.is_relative_to(root):
                return real
        raise AccessError("that folder is not one this app was started with")


def load_settings() -> AppSettings:
    """Settings from the environment (defaults: ./runs, no dataset folders, 10 MB uploads)."""
    folders = os.environ.get(ENV_FOLDERS, "")
    try:
        max_mb = int(os.environ.get(ENV_MAX_UPLOAD, DEFAULT_MAX_UPLOAD_MB))
    except ValueError:
        max_mb = DEFAULT_MAX_UPLOAD_MB
    return AppSettings(
        runs_dir=Path(os.environ.get(ENV_RUNS, "runs")).resolve(),
        folders=tuple(Path(f).resolve() for f in folders.split(os.pathsep) if f),
        max_upload_mb=max(1, max_mb),
    )
