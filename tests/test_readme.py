"""The README tells a newcomer what issue 9.17 found missing, and shows no path of this repository's development layout."""
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_covers_extras_formats_failures_and_crops():
    for needed in (".[search]", ".[umap]", "`e0 … e127`", "always writes\n`OUT.failures.csv`", "--save-crops"):
        assert needed in README, needed


def test_readme_has_no_development_layout_paths():
    assert "../shared" not in README and "/work/" not in README
