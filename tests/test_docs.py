"""The documentation says what the code does: its commands parse, its imports exist, the README's old facts
moved into it, the model card is included (not copied), and the numbers it quotes come from result files."""
import ast
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = {path.relative_to(DOCS).as_posix(): path.read_text() for path in DOCS.rglob("*.md")}
SITE = "\n".join(PAGES.values())


def _shell_commands(text: str):
    """`deepfever ...` command lines of the ```bash blocks (torchrun's `-m deepfever` too), continuations joined."""
    for block in re.findall(r"^```bash\n(.*?)^```$", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["deepfever"]:
                yield line, words[1:]
            elif "deepfever" in words and words[0] == "torchrun":
                yield line, words[words.index("deepfever") + 1:]


def test_every_documented_command_parses_with_the_real_cli():
    from deepfever.cli import build_parser

    commands = [(page, line, argv) for page, text in PAGES.items() for line, argv in _shell_commands(text)]
    assert len(commands) >= 12, len(commands)
    for page, line, argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit as stop:
            pytest.fail(f"{page}: command does not parse ({stop.code}): {line}")


def test_every_python_import_in_the_docs_exists():
    """`from deepfever.x import y` in any Python block names a real module and attribute (read_table's home, say)."""
    import importlib

    checked = 0
    for page, text in PAGES.items():
        for block in re.findall(r"^```python[^\n]*\n(.*?)^```$", text, flags=re.S | re.M):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deepfever"):
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), \
                            f"{page}: from {node.module} import {alias.name} fails"
                        checked += 1
    assert checked >= 15, checked
    assert "deepfever.io.read_table" not in SITE, "read_table lives in deepfever.io.tables"


def test_the_old_readme_facts_live_in_the_site():
    """What the README used to explain is on a page (issue 21: nothing lost when it shrank)."""
    facts = {
        "install.md": ["104 s", "torch==2.13.0", ".[search]", ".[umap]", ".[timm]", ".[serve]", ".[onnx]"],
        "reference/outputs.md": ["`e0 … e127`", "always written", "allow_pickle=False", "`OUT.<format>.meta.json`", "Links** are followed once", "absolute path"],
        "tutorials/photos.md": ["--save-crops", "always writes `faces.parquet.failures.csv`", "uint16"],
        "tutorials/video.md": ["exponential moving average", "3 s", "frames read vs. declared"],
        "tutorials/speed.md": ["--resume", "rank r takes r, r+W", "read_parts", "0.999734", "cuda:LOCAL_RANK"],
        "tutorials/serving.md": ["413", "415", "422", "409", "Retry-After", "--max-wait-ms", "screenshots/upload.png"],
        "tutorials/training.md": ["logit_adjust", "class_balance", "select_on", "checkpoints/last.safetensors", "fetch-fec"],
        "concepts/face-stage.md": ["2,208 of 3,000", "640 px", "facenet-pytorch==2.6.0", "EXIF"],
        "concepts/priors.md": ["prior=\"uniform\"", "epoch 25 of 26", "Bayes"],
        "concepts/limits.md": ["HeadUnavailableError", "Action units", "identity-check"],
        "faq.md": ["DEEPFEVER_MTCNN_WHEEL", "--overwrite", "onnxruntime-gpu", "fetch-fec"],
        "benchmarks.md": ["serve_load_yunet.json", "search_10m", "video_cli", "450/450"],
        "index.md": ["Schoneveld & Othmani", "MIT"],
    }
    for page, needed in facts.items():
        for fact in needed:
            assert fact in PAGES[page], f"{page} lost: {fact}"


def test_the_model_card_is_included_not_copied():
    assert '--8<-- "MODEL_CARD.md"' in PAGES["model-card.md"]
    card = (REPO / "MODEL_CARD.md").read_text()
    assert card.splitlines()[2] not in PAGES["model-card.md"]


def test_the_site_states_no_stale_smoothing_window():
    """`--smooth` is an exponential weight in [0, 1) (video.extract's docstring), not a window length."""
    from deepfever.video.extract import iter_frame_rows

    assert "exponential moving average" in iter_frame_rows.__doc__
    assert not re.search(r"--smooth W\b|moving.average window", SITE + (REPO / "README.md").read_text())


def test_benchmark_numbers_are_read_from_the_result_files():
    """The benchmarks page reads every result file it names, and each named file exists."""
    page = PAGES["benchmarks.md"]
    named = set(re.findall(r'result\("([\w.\-]+)"\)', page))
    assert len(named) >= 12, named
    missing = [name for name in named if not (REPO / "benchmarks" / "results" / f"{name}.json").is_file()]
    assert missing == []
