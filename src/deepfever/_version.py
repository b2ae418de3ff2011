"""The package version, and the exact source revision when running from a git checkout."""
from __future__ import annotations

import subprocess
from pathlib import Path

__version__ = "0.1.0"


def source_revision() -> str | None:
    """Git commit of this package's source (``+dirty`` if tracked files changed); None if not a checkout.

    Recorded with every run and benchmark so a number can be traced to the code that produced it.
    An installed wheel that happens to sit inside some other repository is not a checkout of ours:
    the package's own ``__init__.py`` must be tracked.
    """
    package = Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, timeout=20)

    try:
        if git("ls-files", "--error-unmatch", "__init__.py").returncode:
            return None
        commit = git("rev-parse", "HEAD").stdout.strip()
        changed = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (commit + ("+dirty" if changed else "")) or None
