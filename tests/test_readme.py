"""The README is short and true: what it is, the two commands as CI runs them, a tour whose commands parse,
links that lead into the documentation site, and no path of this repository's development layout."""
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_has_the_two_commands_exactly():
    assert "```bash\nbash scripts/setup.sh && .venv/bin/deepfever demo\n```" in README
    assert "```bash\nbash scripts/setup.sh && .venv/bin/python -m pytest\n```" in README


def test_readme_is_short_and_points_into_the_site():
    assert len(README.splitlines()) <= 140, "the README is a tour and the measured tables; details belong in docs/"
    assert "mkdocs serve" in README
    for needed in (".[search]", ".[umap]", ".[serve]", ".[ray]", ".[docs]"):  # onnx is a core dependency now
        assert needed in README, needed


def test_readme_links_exist():
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 15, links
    missing = [link for link in links if not (REPO / link).exists()]
    assert missing == [], f"README links to files that do not exist: {missing}"


def test_readme_commands_parse_with_the_real_cli():
    """Every `deepfever ...` line of the README names a real command and real flags (no stale options)."""
    from deepfever.cli import build_parser

    lines = [line for line in README.splitlines() if line.startswith("deepfever ")]
    assert len(lines) >= 8
    for line in lines:
        argv = shlex.split(line, comments=True)[1:]
        try:
            build_parser().parse_args(argv)
        except SystemExit as stop:
            pytest.fail(f"README line does not parse ({stop.code}): {line}")


def test_readme_has_no_development_layout_paths():
    assert "../shared" not in README and "/work/" not in README
