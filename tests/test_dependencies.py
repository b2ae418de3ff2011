"""Every third-party module the package imports is declared in pyproject.toml (issue 9: scipy was not)."""
import ast
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = {"PIL": "pillow", "cv2": "opencv-python-headless", "sklearn": "scikit-learn", "skimage": "scikit-image",
                 "yaml": "pyyaml", "faiss": "faiss-cpu", "umap": "umap-learn", "multipart": "python-multipart",
                 "starlette": "fastapi"}  # starlette comes with fastapi
OPTIONAL_SUBPACKAGES = ("serve",)
"""Subpackages that only work with their extra installed: their module-level imports may be extras."""


def _imports() -> tuple[set[str], set[str]]:
    """(modules imported at module level, other imports: in functions or in optional subpackages) by src/deepfever."""
    top, lazy = set(), set()
    for path in (REPO / "src" / "deepfever").rglob("*.py"):
        tree = ast.parse(path.read_text())
        optional = path.relative_to(REPO / "src" / "deepfever").parts[0] in OPTIONAL_SUBPACKAGES
        module_level = set() if optional else {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            (top if id(node) in module_level else lazy).update(name.split(".")[0] for name in names)
    third_party = lambda names: {name for name in names if name not in sys.stdlib_module_names and name != "deepfever"}
    return third_party(top), third_party(lazy)


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    name = lambda requirement: re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()
    core = {name(requirement) for requirement in project["dependencies"]}
    extras = {name(requirement) for group in project.get("optional-dependencies", {}).values() for requirement in group}
    return core, extras


def test_every_import_is_declared():
    top, lazy = _imports()
    core, extras = _declared()
    distribution = lambda module: DISTRIBUTIONS.get(module, module).lower()
    assert sorted(m for m in top if distribution(m) not in core) == [], "imported at module level but not a dependency"
    assert sorted(m for m in lazy if distribution(m) not in core | extras) == [], "imported lazily but in no extra"
