"""Exceptions that tell the user what was expected, what was received and how to fix it.

Each error also subclasses the built-in it refines, so ``except ValueError`` keeps working.
"""
from __future__ import annotations


class DeepFeverError(Exception):
    """Base class of every error raised on purpose by deepfever."""


class ImageReadError(DeepFeverError, ValueError):
    """A file could not be decoded as an image (corrupt, truncated, not an image, too large)."""


class WeightsUnavailableError(DeepFeverError, RuntimeError):
    """Model files are not in the local cache and could not be fetched."""


class DataFormatError(DeepFeverError, ValueError):
    """A dataset file does not follow its official format."""


class HeadUnavailableError(DeepFeverError, KeyError):
    """The model has no trained head of that name, so it cannot report it."""


class Option:
    """One setting as each audience names it: ``argument`` for Python callers, ``flag`` on the command line."""

    __slots__ = ("argument", "flag")

    def __init__(self, argument: str, flag: str) -> None:
        self.argument = argument
        self.flag = flag


OVERWRITE = Option("overwrite=True", "--overwrite")
RESUME = Option("resume=True", "--resume")


class OptionMessage(str):
    """An error message that names settings: it reads with Python arguments (``pass overwrite=True``),
    and ``for_command_line`` gives the same words with flags (``pass --overwrite``).

    Built from pieces, so a path in the message is never parsed as a template::

        raise FileExistsError(OptionMessage(f"{path} already exists; pass ", OVERWRITE, " to replace it"))
    """

    flag_text: str

    def __new__(cls, *pieces: str | Option) -> OptionMessage:
        text = super().__new__(cls, "".join(p.argument if isinstance(p, Option) else p for p in pieces))
        text.flag_text = "".join(p.flag if isinstance(p, Option) else p for p in pieces)
        return text


def for_command_line(error: BaseException) -> str:
    """``error``'s message as a command-line user reads it: flags where a Python caller reads arguments."""
    message = error.args[0] if len(error.args) == 1 else None
    return message.flag_text if isinstance(message, OptionMessage) else str(error)
