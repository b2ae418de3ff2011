"""``deepfever demo``: the whole pipeline on a public-domain photo that scikit-image ships.

NASA's astronaut portrait (Eileen Collins) needs no download and no input from the user.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepfever.cli._common import status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the pipeline on a bundled sample photo and write a table + annotated image")
    parser.add_argument("-o", "--output-dir", default="outputs/demo", help="folder for demo.csv and the annotated image")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier demo")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import skimage.data
    from PIL import Image

    from deepfever.api import Extractor
    from deepfever.extraction.annotate import annotate_file
    from deepfever.extraction.run import ExtractionRun
    from deepfever.io.atomic import atomic_write, refuse_overwrite
    from deepfever.io.tables import check_table_path, read_table

    started = time.perf_counter()
    folder = Path(args.output_dir)
    table_path = check_table_path(folder / "demo.csv", args.overwrite)
    photo = folder / "astronaut.png"
    annotated = folder / "astronaut.annotated.jpg"
    for target in (photo, annotated):
        refuse_overwrite(target, args.overwrite)
    with atomic_write(photo) as tmp:
        Image.fromarray(skimage.data.astronaut()).save(tmp, format="PNG")
    extractor = Extractor(device="auto")
    # The run `extract` uses, so the demo's table records how it was made (model fingerprint, face stage) like any other.
    report = ExtractionRun(extractor, table_path, overwrite=args.overwrite).run([photo])
    frame = read_table(table_path)
    annotate_file(photo, frame, annotated)
    columns = ["face", "emotion"] + [c for c in frame.columns if c.startswith("p_")]
    print(frame[columns].round(3).to_string(index=False))
    print(f"model {extractor.fingerprint_['model_id']}; {report.summary()}")
    print(f"table:           {table_path.resolve()}")
    print(f"annotated image: {annotated.resolve()}")
    status(args, f"demo finished in {time.perf_counter() - started:.1f} s", stderr=True)
    return 0 if len(frame) else 1
