"""The CLI reference, generated from the argparse parsers ``deepfever.cli.build_parser`` builds.

Run ``python docs/_ext/cli_reference.py`` to print it; the site's CLI page prints it at build time,
so a new command, flag or help text shows up there without editing the docs.
"""
from __future__ import annotations

import argparse
import os
from typing import Iterator


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of each sub-command; argparse keeps the help on a pseudo-action."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield name, child, helps.get(name, "")


def _walk(parser: argparse.ArgumentParser, prefix: str, summary: str) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    yield prefix, parser, summary
    for name, child, help_text in _subcommands(parser):
        yield from _walk(child, f"{prefix} {name}", help_text)


def render() -> str:
    """Markdown: one section per command and sub-command, with its full ``--help``."""
    os.environ["COLUMNS"] = "80"  # argparse wraps help to the terminal width; fix it for a stable page
    from deepfever.cli import build_parser

    root = build_parser()
    sections = []
    for command, parser, summary in _walk(root, "deepfever", root.description or ""):
        depth = command.count(" ")
        heading = "#" * min(2 + depth, 4)
        anchor = command.replace(" ", "-")
        sections.append(f"{heading} `{command}` {{ #{anchor} }}\n\n{summary}\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(sections)


if __name__ == "__main__":
    print(render())
