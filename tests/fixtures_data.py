"""Generate tiny datasets in each owner's official layout, so format readers are tested on real structure."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (8, 8), grey: bool = False) -> Path:
    """Write a small random image; the format follows the suffix."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if grey else (size[1], size[0], 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def landmark_text(count: int = 68) -> str:
    return ";".join(f"{value:.2f}" for value in np.linspace(10, 200, 2 * count))


AFFECTNET_HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"


def make_affectnet(root: Path) -> Path:
    """training.csv: codes 0..7 each once, 8/9/10 once each, one V/A of -2, one bad landmark row, one missing image.

    validation.csv: two usable rows.
    """
    rows = []
    for code in range(8):
        rows.append((f"1/img{code}.jpg", code, 0.5, -0.25))
    for code in (8, 9, 10):
        rows.append((f"2/img{code}.jpg", code, -2, -2))
    rows.append(("3/neutral_unrated.jpg", 0, -2, 0.1))
    images = root / "Manually_Annotated_Images"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "training.csv", "w", newline="") as handle:
        handle.write(AFFECTNET_HEADER + "\n")
        writer = csv.writer(handle)
        for relative, code, valence, arousal in rows:
            write_image(images / relative, seed=code)
            writer.writerow([relative, 10, 20, 30, 40, landmark_text(), code, valence, arousal])
        write_image(images / "1/bad_landmarks.jpg")
        writer.writerow(["1/bad_landmarks.jpg", 10, 20, 30, 40, landmark_text(67), 1, 0.1, 0.1])
        writer.writerow(["1/not_there.jpg", 10, 20, 30, 40, landmark_text(), 1, 0.1, 0.1])
    with open(root / "validation.csv", "w", newline="") as handle:
        handle.write(AFFECTNET_HEADER + "\n")
        writer = csv.writer(handle)
        for code in (6, 7):
            write_image(images / f"9/val{code}.png", seed=code)
            writer.writerow([f"9/val{code}.png", 0, 0, 8, 8, landmark_text(), code, 0.0, 1.0])
    return root


def fec_face(url: str, box: tuple[float, float, float, float]) -> list[str]:
    """One face's five CSV fields: URL, then left, right, top, bottom (FEC's column order)."""
    left, top, right, bottom = box
    return [url, str(left), str(right), str(top), str(bottom)]


def fec_row(faces: list[list[str]], triplet_type: str, choices: list[int]) -> list[str]:
    row = [field for face in faces for field in face] + [triplet_type]
    for index, choice in enumerate(choices):
        row += [f"rater{index}", str(choice)]
    return row


def write_fec_csv(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(rows)
    return path


RAFDB_LINES = [
    ("train_00001.jpg", 1), ("train_00002.jpg", 2), ("train_00003.jpg", 3), ("train_00004.jpg", 4),
    ("train_00005.jpg", 5), ("train_00006.jpg", 6), ("train_00007.jpg", 7), ("train_00008.jpg", 9),
    ("test_0001.jpg", 4), ("test_0002.jpg", 7), ("test_0003.jpg", 7), ("val_0001.jpg", 1),
]


def make_rafdb(root: Path, missing: str = "test_0003.jpg") -> Path:
    """RAF-DB basic: every label once in train plus a bad code 9, two test images (one missing), a val_ name."""
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    with open(root / "EmoLabel" / "list_patition_label.txt", "w") as handle:
        for name, code in RAFDB_LINES:
            handle.write(f"{name} {code}\n")
            if name != missing:
                write_image(root / "Image" / "original" / name)
                write_image(root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"))
    return root


def fer2013_pixels(seed: int) -> str:
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, 48 * 48)))


def make_fer2013(path: Path, rows: list[tuple[int | str, str]]) -> Path:
    """``rows`` = (emotion, Usage); pixels are random and seeded by the row index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for index, (emotion, usage) in enumerate(rows):
            writer.writerow([emotion, fer2013_pixels(index), usage])
    return path


FERPLUS_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]


def make_fer2013new(path: Path, rows: list[tuple[str, str, list[int]]]) -> Path:
    """``rows`` = (Usage, Image name, 10 vote counts)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Usage", "Image name", *FERPLUS_COLUMNS])
        for usage, name, votes in rows:
            writer.writerow([usage, name, *votes])
    return path


def make_ferplus_folder(root: Path) -> Path:
    """FERPlus folders: train has a clear happy, a no-majority and an NF image; valid one neutral."""
    rows = {
        "FER2013Train": [("fer0.png", [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]), ("fer1.png", [4, 4, 2, 0, 0, 0, 0, 0, 0, 0]),
                         ("fer2.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10])],
        "FER2013Valid": [("fer3.png", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
    }
    for folder, entries in rows.items():
        (root / folder).mkdir(parents=True)
        with open(root / folder / "label.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            for name, votes in entries:
                write_image(root / folder / name, grey=True, size=(48, 48))
                writer.writerow([name, "(0, 0, 48, 48)", *votes])
    return root


def make_ckplus(root: Path) -> Path:
    """S005/001 disgust (code 3, 4 frames), S010/002 happy (5, 3 frames), S010/003 unlabelled, S011/001 code 9."""
    sequences = {("S005", "001"): (4, "   3.0000000e+00\n"), ("S010", "002"): (3, "5.0\n"),
                 ("S010", "003"): (3, None), ("S011", "001"): (2, "   9.0000000e+00\n")}
    for (subject, sequence), (frames, code) in sequences.items():
        for frame in range(1, frames + 1):
            write_image(root / "cohn-kanade-images" / subject / sequence / f"{subject}_{sequence}_{frame:08d}.png", grey=True)
        emotion_dir = root / "Emotion" / subject / sequence
        emotion_dir.mkdir(parents=True, exist_ok=True)
        if code is not None:
            (emotion_dir / f"{subject}_{sequence}_{frames:08d}_emotion.txt").write_text(code)
    return root


def make_ckplus48(root: Path) -> Path:
    for folder, names in {"anger": ["S010_004_00000017.png"], "sadness": ["S011_002_00000021.png", "badname.png"]}.items():
        for name in names:
            write_image(root / folder / name, grey=True)
    return root


JAFFE_FILES = ["KA.AN1.39.tiff", "KA.NE1.26.tiff", "KL.HA2.159.tiff", "KL.SA1.160.tiff", "TM.SU1.84.tiff",
               "TM.FE2.78.tiff", "YM.DI1.61.tiff", "YM.XX1.1.tiff", "notjaffe.tiff"]


def make_jaffe(root: Path) -> Path:
    for index, name in enumerate(JAFFE_FILES):
        write_image(root / name, seed=index, grey=True)
    (root / "README").write_text("The Japanese Female Facial Expression Database\n")
    return root


EXPW_LINES = [
    "angry_actor_104.jpg 0 28 106 193 115 57.07 0",
    "angry_actor_104.jpg 1 30 200 260 90 40.2 3",
    "happy_crowd_1.jpg 0 5 5 50 60 70.5 6",
    "happy_crowd_1.jpg 1 5 5 50 60 70.5 7",
    "happy_crowd_1.jpg 2 60 50 40 80 70.5 3",
    "missing.jpg 0 1 2 30 40 20.0 5",
]


def make_expw(root: Path) -> Path:
    """Six labelled faces: three usable, one bad label 7, one empty box, one missing photo."""
    (root / "label").mkdir(parents=True)
    (root / "label" / "label.lst").write_text("\n".join(EXPW_LINES) + "\n")
    for name in ("angry_actor_104.jpg", "happy_crowd_1.jpg"):
        write_image(root / "image" / "origin" / name, size=(300, 200))
    return root


def make_folder(root: Path, classes: dict[str, int]) -> Path:
    """``classes`` = folder name -> number of images."""
    for folder, count in classes.items():
        for index in range(count):
            write_image(root / folder / f"{index}.jpg", seed=index)
    return root
