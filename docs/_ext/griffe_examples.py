"""Griffe extension: read the package's ``Example:`` docstring sections as Google-style ``Examples:``.

The package writes ``Example:`` (singular); Griffe only knows ``Examples:`` and would render the
``>>>`` lines as prose, where ``x["a"][0]`` reads as a Markdown link. Renaming the heading on
load shows them as code and leaves the sources alone.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headings to ``Examples:`` in every loaded docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_HEADING.sub(r"\1Examples:", obj.docstring.value)
