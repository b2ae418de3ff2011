"""Every dataset format, read from tiny fixtures written in its owners' official layout."""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepfever.cli import main
from deepfever.data.formats import NO_LABEL, DatasetSplit, list_formats, read_dataset
from deepfever.data.formats.fec import FecFace, fec_face_stem, read_fec_csv, read_fec_triplets
from deepfever.data.formats.generic import folder_class_names
from deepfever.labels import EMOTION_INDEX, EMOTIONS
from deepfever.errors import DataFormatError
from fixtures_data import (
    AFFECTNET_HEADER,
    fec_face,
    fec_row,
    fer2013_pixels,
    landmark_text,
    make_affectnet,
    make_ckplus,
    make_ckplus48,
    make_expw,
    make_fer2013,
    make_fer2013new,
    make_ferplus_folder,
    make_folder,
    make_jaffe,
    make_rafdb,
    write_fec_csv,
    write_image,
)

E = EMOTION_INDEX
SHARED_FERPLUS = Path(__file__).resolve().parents[2].parent / "shared/data/ferplus"
FEC_TRAIN = "faceexp-comparison-data-train-public.csv"


def labels_of(split: DatasetSplit) -> list[int]:
    return [sample.label for sample in split.samples]


# --- fixtures in official layouts -------------------------------------------------------------

FACE_A = fec_face("http://example.test/1.jpg", (0.1, 0.2, 0.5, 0.6))
FACE_B = fec_face("http://example.test/2.jpg", (0.0, 0.0, 1.0, 1.0))
FACE_C = fec_face("http://example.test/3.jpg", (0.25, 0.25, 0.75, 0.75))
FACE_D = fec_face("http://example.test/1.jpg", (0.5, 0.5, 0.9, 0.9))


def make_fec(root: Path) -> Path:
    """Two usable triplets over four unique faces (A and D share a photo) and three unusable rows."""
    write_fec_csv(root / FEC_TRAIN, [
        fec_row([FACE_A, FACE_B, FACE_C], "ONE_CLASS_TRIPLET", [1, 1, 1, 2, 1, 1]),
        fec_row([FACE_A, FACE_B, FACE_D], "TWO_CLASS_TRIPLET", [1, 1, 2, 2, 3, 3]),
        fec_row([FACE_A, FACE_B, FACE_C], "FOUR_CLASS_TRIPLET", [1, 1, 1, 1, 1, 1]),
        fec_row([FACE_A, FACE_B, FACE_C], "THREE_CLASS_TRIPLET", [1, 4, 1, 1, 1, 1]),
        fec_row([FACE_A, FACE_B, fec_face("http://example.test/4.jpg", (0.1, 0.1, 1.2, 0.9))], "ONE_CLASS_TRIPLET", [3] * 6),
    ])
    return root


FER2013_ROWS = [(0, "Training"), (3, "Training"), (6, "PublicTest"), (1, "PrivateTest"), (7, "Training"), (2, "Bogus")]
FERPLUS_CSV_ROWS = [
    ("Training", "fer0.png", [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]),
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),
    ("Training", "fer2.png", [4, 4, 2, 0, 0, 0, 0, 0, 0, 0]),
    ("PublicTest", "fer3.png", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ("PrivateTest", "fer4.png", [0, 0, 0, 0, 0, 0, 0, 8, 2, 0]),
]


def make_ferplus_csv(root: Path) -> Path:
    make_fer2013(root / "fer2013.csv", [(0, usage) for usage, _, _ in FERPLUS_CSV_ROWS] + [(0, "PrivateTest")])
    make_fer2013new(root / "fer2013new.csv", FERPLUS_CSV_ROWS)
    return root


def make_manifest(root: Path) -> Path:
    write_image(root / "imgs" / "a.jpg")
    write_image(root / "imgs" / "b.png")
    absolute = write_image(root / "elsewhere" / "c.jpg")
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "valence", "arousal", "subject", "split"])
        writer.writerow(["imgs/a.jpg", "Happiness", "0.3", "-0.2", "p1", "train"])
        writer.writerow(["imgs/b.png", "", "0.5", "", "p2", "train"])
        writer.writerow([str(absolute), "7", "", "", "", "test"])
        writer.writerow(["imgs/gone.jpg", "sad", "", "", "", "test"])
    return root / "manifest.csv"


def make_images(root: Path) -> Path:
    write_image(root / "faces" / "a.jpg")
    write_image(root / "faces" / "nested" / "b.png", seed=1)
    (root / "faces" / "notes.txt").write_text("not an image")
    return root / "faces"


def test_images_format_reads_every_image_recursively_as_unlabelled(tmp_path: Path) -> None:
    split = read_dataset("images", str(make_images(tmp_path)))["all"]
    assert [Path(sample.path).name for sample in split.samples] == ["a.jpg", "b.png"]
    assert all(sample.label == NO_LABEL for sample in split.samples) and split.skipped["not an image file"] == 1


FORMAT_FIXTURES = {
    "affectnet": lambda root: (make_affectnet(root), {}),
    "fec": lambda root: (make_fec(root), {"require_images": False}),
    "rafdb": lambda root: (make_rafdb(root), {}),
    "fer2013": lambda root: (make_fer2013(root / "fer2013.csv", FER2013_ROWS).parent, {}),
    "ferplus": lambda root: (make_ferplus_folder(root), {}),
    "ferplus_csv": lambda root: (make_ferplus_csv(root), {}),
    "ckplus": lambda root: (make_ckplus(root), {}),
    "ckplus48": lambda root: (make_ckplus48(root), {}),
    "jaffe": lambda root: (make_jaffe(root), {}),
    "expw": lambda root: (make_expw(root), {}),
    "folder": lambda root: (make_folder(root, {"happy": 2, "Sadness": 1}), {}),
    "csv": lambda root: (make_manifest(root), {}),
    "images": lambda root: (make_images(root), {}),
}


# --- the registry contract ---------------------------------------------------------------------

def test_every_registered_format_has_a_fixture() -> None:
    assert sorted(FORMAT_FIXTURES) == list_formats()


@pytest.mark.parametrize("name", sorted(FORMAT_FIXTURES))
def test_format_contract(name: str, tmp_path: Path) -> None:
    root, options = FORMAT_FIXTURES[name](tmp_path)
    splits = read_dataset(name, str(root), **options)
    assert splits and all(isinstance(split, DatasetSplit) and split.name == key for key, split in splits.items())
    assert sum(len(split.samples) for split in splits.values()) > 0
    for split in splits.values():
        for sample in split.samples:
            assert sample.label == NO_LABEL or 0 <= sample.label < len(EMOTIONS)
            assert sample.path is not None or sample.pixels is not None
            if sample.soft_label is not None:
                assert sample.soft_label.shape == (8,) and math.isclose(float(sample.soft_label.sum()), 1.0, rel_tol=1e-5)
            for value in (sample.valence, sample.arousal):
                assert math.isnan(value) or -1.0 <= value <= 1.0
        assert all(count > 0 and isinstance(reason, str) for reason, count in split.skipped.items())


# --- AffectNet ---------------------------------------------------------------------------------

def test_affectnet_labels_masking_and_skips(tmp_path: Path) -> None:
    splits = read_dataset("affectnet", str(make_affectnet(tmp_path)))
    train, valid = splits["train"], splits["valid"]
    assert labels_of(train) == list(range(8)) + [E["neutral"]]
    assert dict(train.skipped) == {
        "expression 8 (None)": 1, "expression 9 (Uncertain)": 1, "expression 10 (Non-Face)": 1,
        "facial_landmarks is not 136 ';'-separated numbers": 1, "image file missing": 1,
    }
    first, unrated = train.samples[0], train.samples[-1]
    assert (first.valence, first.arousal) == (0.5, -0.25)
    assert math.isnan(unrated.valence) and unrated.arousal == pytest.approx(0.1)
    assert first.box == (10.0, 20.0, 40.0, 60.0)
    assert first.landmarks.shape == (68, 2) and first.landmarks[0, 1] > first.landmarks[0, 0]
    assert first.path == str(tmp_path / "Manually_Annotated_Images" / "1" / "img0.jpg")
    assert labels_of(valid) == [E["anger"], E["contempt"]]


def test_affectnet_images_dir_option(tmp_path: Path) -> None:
    root = make_affectnet(tmp_path / "ann")
    shutil.move(root / "Manually_Annotated_Images", tmp_path / "pictures")
    assert len(read_dataset("affectnet", str(root))["train"].samples) == 0
    splits = read_dataset("affectnet", str(root), images_dir=str(tmp_path / "pictures"))
    assert len(splits["train"].samples) == 9 and splits["train"].samples[0].path.startswith(str(tmp_path / "pictures"))


@pytest.mark.parametrize(
    "row, message",
    [
        (["a.jpg", 1, 2, 3, 4, landmark_text(), 1, 0.1], r"validation\.csv, line 3: expected 9 fields, got 8"),
        (["a.jpg", 1, 2, 3, 4, landmark_text(), 1, "high", 0.1], r"line 3: face box, expression, valence and arousal must be numbers"),
    ],
)
def test_affectnet_malformed_rows(tmp_path: Path, row: list, message: str) -> None:
    with open(tmp_path / "validation.csv", "w", newline="") as handle:
        handle.write(AFFECTNET_HEADER + "\n")
        csv.writer(handle).writerows([["b.jpg", 1, 2, 3, 4, landmark_text(), 1, 0.1, 0.1], row])
    with pytest.raises(DataFormatError, match=message):
        read_dataset("affectnet", str(tmp_path))


def test_affectnet_wrong_header_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="neither training.csv nor validation.csv"):
        read_dataset("affectnet", str(tmp_path))
    (tmp_path / "training.csv").write_text("path,label\n")
    with pytest.raises(DataFormatError, match=r"training\.csv, line 1: expected header subDirectory_filePath"):
        read_dataset("affectnet", str(tmp_path))


# --- Google FEC --------------------------------------------------------------------------------

def test_fec_triplets_majority_and_agreement(tmp_path: Path) -> None:
    triplets, skipped = read_fec_csv(make_fec(tmp_path) / FEC_TRAIN)
    assert len(triplets) == 2
    assert dict(skipped) == {"unknown triplet type 'FOUR_CLASS_TRIPLET'": 1, "annotation outside 1..3": 1, "face box outside [0, 1]": 1}
    first, second = triplets
    assert first.faces[0] == FecFace("http://example.test/1.jpg", (0.1, 0.2, 0.5, 0.6))
    assert first.triplet_type == "ONE_CLASS_TRIPLET" and first.annotations[3] == ("rater3", 2)
    assert first.majority_odd_one_out == 1 and first.agreement == pytest.approx(5 / 6)
    assert second.majority_odd_one_out is None and second.agreement == pytest.approx(2 / 6)
    assert read_fec_triplets(str(tmp_path), "train") == triplets


def test_fec_format_counts_unique_faces_and_fetched_images(tmp_path: Path) -> None:
    make_fec(tmp_path)
    split = read_dataset("fec", str(tmp_path))["train"]
    assert split.samples == [] and split.skipped["image not fetched (run deepfever data fetch-fec)"] == 4
    assert len(read_dataset("fec", str(tmp_path), require_images=False)["train"].samples) == 4
    face_a = FecFace(FACE_A[0], (0.1, 0.2, 0.5, 0.6))
    write_image(tmp_path / "images" / (fec_face_stem(face_a) + ".png"))
    split = read_dataset("fec", str(tmp_path))["train"]
    assert [sample.path for sample in split.samples] == [str(tmp_path / "images" / (fec_face_stem(face_a) + ".png"))]
    assert all(sample.label == NO_LABEL for sample in split.samples)


def test_fec_face_stem_is_stable_across_number_spellings() -> None:
    assert fec_face_stem(FecFace("u", (0.1, 0.2, 0.5, 0.6))) == fec_face_stem(FecFace("u", (0.100, 0.2000, 0.5, 0.6)))
    assert fec_face_stem(FecFace("u", (0.1, 0.2, 0.5, 0.6))) != fec_face_stem(FecFace("u", (0.1, 0.2, 0.5, 0.7)))


def test_fec_malformed_rows(tmp_path: Path) -> None:
    good = fec_row([FACE_A, FACE_B, FACE_C], "ONE_CLASS_TRIPLET", [1] * 6)
    write_fec_csv(tmp_path / "short.csv", [good, good[:-1]])
    with pytest.raises(DataFormatError, match=r"short\.csv, line 2: expected 28 fields .* got 27"):
        read_fec_csv(tmp_path / "short.csv")
    write_fec_csv(tmp_path / "text.csv", [good[:-1] + ["two"]])
    with pytest.raises(DataFormatError, match=r"text\.csv, line 1: boxes and annotations must be numbers"):
        read_fec_csv(tmp_path / "text.csv")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        read_fec_triplets(str(tmp_path), "valid")


# --- RAF-DB ------------------------------------------------------------------------------------

def test_rafdb_mapping_splits_and_skips(tmp_path: Path) -> None:
    splits = read_dataset("rafdb", str(make_rafdb(tmp_path)))
    assert labels_of(splits["train"]) == [E["surprise"], E["fear"], E["disgust"], E["happy"], E["sad"], E["anger"], E["neutral"]]
    assert dict(splits["train"].skipped) == {"label 9 not in 1..7": 1}
    assert labels_of(splits["test"]) == [E["happy"], E["neutral"]]
    assert dict(splits["test"].skipped) == {"image file missing": 1}
    assert splits["unassigned"].samples == [] and sum(splits["unassigned"].skipped.values()) == 1
    assert splits["train"].samples[0].path == str(tmp_path / "Image" / "aligned" / "train_00001_aligned.jpg")
    original = read_dataset("rafdb", str(tmp_path), aligned=False)
    assert original["train"].samples[0].path == str(tmp_path / "Image" / "original" / "train_00001.jpg")


def test_rafdb_malformed_line(tmp_path: Path) -> None:
    make_rafdb(tmp_path)
    with open(tmp_path / "EmoLabel" / "list_patition_label.txt", "a") as handle:
        handle.write("test_0004.jpg\n")
    with pytest.raises(DataFormatError, match=r"list_patition_label\.txt, line 13: expected 'image_name label'"):
        read_dataset("rafdb", str(tmp_path))
    with pytest.raises(DataFormatError, match="no EmoLabel/list_patition_label.txt"):
        read_dataset("rafdb", str(tmp_path / "Image"))


# --- FER2013 and FER+ --------------------------------------------------------------------------

def test_fer2013_mapping_pixels_and_skips(tmp_path: Path) -> None:
    make_fer2013(tmp_path / "fer2013" / "fer2013.csv", FER2013_ROWS)
    splits = read_dataset("fer2013", str(tmp_path))
    assert labels_of(splits["train"]) == [E["anger"], E["happy"]]
    assert dict(splits["train"].skipped) == {"emotion code '7' not in 0..6": 1}
    assert labels_of(splits["valid"]) == [E["neutral"]] and labels_of(splits["test"]) == [E["disgust"]]
    assert dict(splits["unassigned"].skipped) == {"unknown Usage 'Bogus'": 1}
    pixels = splits["train"].samples[1].pixels
    assert pixels.dtype == np.uint8 and pixels.shape == (48, 48)
    assert pixels.ravel().tolist() == [int(value) for value in fer2013_pixels(1).split()]


@pytest.mark.parametrize(
    "pixels, message",
    [
        (" ".join(["1"] * 2303), r"line 3: expected 2304 pixel values, got 2303"),
        (" ".join(["1"] * 2303 + ["256"]), r"line 3: pixel values must lie in 0\.\.255"),
        (" ".join(["1"] * 2303 + ["x"]), r"line 3: pixels must be space-separated integers"),
    ],
)
def test_fer2013_malformed_pixels(tmp_path: Path, pixels: str, message: str) -> None:
    path = make_fer2013(tmp_path / "fer2013.csv", [(3, "Training")])
    with open(path, "a", newline="") as handle:
        csv.writer(handle).writerow([3, pixels, "Training"])
    with pytest.raises(DataFormatError, match=message):
        read_dataset("fer2013", str(path))


def test_fer2013_wrong_header(tmp_path: Path) -> None:
    (tmp_path / "fer2013.csv").write_text("label,pixels\n")
    with pytest.raises(DataFormatError, match="line 1: expected header emotion,pixels,Usage"):
        read_dataset("fer2013", str(tmp_path))


def test_ferplus_csv_joins_rows_with_fer2013(tmp_path: Path) -> None:
    splits = read_dataset("ferplus_csv", str(make_ferplus_csv(tmp_path)))
    train = splits["train"]
    assert labels_of(train) == [E["happy"]]
    assert dict(train.skipped) == {"no image name (dropped by FER+)": 1, "no majority (top emotion holds at most half of the votes)": 1}
    assert train.samples[0].pixels.ravel().tolist() == [int(value) for value in fer2013_pixels(0).split()]
    assert splits["valid"].samples[0].pixels.ravel().tolist() == [int(value) for value in fer2013_pixels(3).split()]
    assert labels_of(splits["valid"]) == [E["neutral"]] and labels_of(splits["test"]) == [E["contempt"]]
    ambiguous = read_dataset("ferplus_csv", str(tmp_path), keep_ambiguous=True)["train"]
    assert labels_of(ambiguous) == [E["happy"], NO_LABEL]


def test_ferplus_csv_with_separate_fer2013_and_mismatches(tmp_path: Path) -> None:
    votes = tmp_path / "votes"
    votes.mkdir()
    make_fer2013new(votes / "fer2013new.csv", FERPLUS_CSV_ROWS)
    pixels = make_fer2013(tmp_path / "px" / "fer2013.csv", [(0, usage) for usage, _, _ in FERPLUS_CSV_ROWS])
    assert len(read_dataset("ferplus_csv", str(votes), fer2013_csv=str(pixels))["train"].samples) == 1
    make_fer2013(pixels, [(0, "Training")] * 5)
    with pytest.raises(DataFormatError, match=r"fer2013new\.csv, line 5: Usage 'PublicTest' but .*fer2013\.csv, line 5 says 'Training'"):
        read_dataset("ferplus_csv", str(votes), fer2013_csv=str(pixels))
    make_fer2013(pixels, [(0, "Training")] * 2)
    with pytest.raises(DataFormatError, match=r"line 4: .* has only 2 rows"):
        read_dataset("ferplus_csv", str(votes), fer2013_csv=str(pixels))
    with pytest.raises(DataFormatError, match="no fer2013.csv"):
        read_dataset("ferplus_csv", str(votes))


def test_ferplus_folder_fixture(tmp_path: Path) -> None:
    splits = read_dataset("ferplus", str(make_ferplus_folder(tmp_path)))
    assert labels_of(splits["train"]) == [E["happy"]] and labels_of(splits["valid"]) == [E["neutral"]]
    assert dict(splits["train"].skipped) == {"no majority (top emotion holds at most half of the votes)": 1, "majority vote is NF": 1}


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_FERPLUS / "FER2013Train" / "label.csv").is_file(), reason="shared FER+ data not present")
def test_ferplus_folder_real_data() -> None:
    splits = read_dataset("ferplus", str(SHARED_FERPLUS))
    assert len(splits["train"].samples) == 25045 and len(splits["valid"].samples) == 3191


# --- CK+ ---------------------------------------------------------------------------------------

def test_ckplus_official_peak_frames(tmp_path: Path) -> None:
    split = read_dataset("ckplus", str(make_ckplus(tmp_path)))["all"]
    assert [(Path(sample.path).name, sample.label, sample.subject) for sample in split.samples] == [
        ("S005_001_00000004.png", E["disgust"], "S005"),
        ("S010_002_00000003.png", E["happy"], "S010"),
    ]
    assert dict(split.skipped) == {"sequence without emotion label": 1, "emotion code 9 not in 0..7": 1}


def test_ckplus_last_frames_and_first_as_neutral(tmp_path: Path) -> None:
    make_ckplus(tmp_path)
    split = read_dataset("ckplus", str(tmp_path), last_frames=2, first_as_neutral=True)["all"]
    assert [(Path(sample.path).stem[-2:], sample.label) for sample in split.samples] == [
        ("01", E["neutral"]), ("03", E["disgust"]), ("04", E["disgust"]),
        ("01", E["neutral"]), ("02", E["happy"]), ("03", E["happy"]),
    ]
    every_frame = read_dataset("ckplus", str(tmp_path), last_frames=10, first_as_neutral=True)["all"]
    assert labels_of(every_frame) == [E["disgust"]] * 4 + [E["happy"]] * 3
    with pytest.raises(ValueError, match="last_frames must be at least 1"):
        read_dataset("ckplus", str(tmp_path), last_frames=0)


def test_ckplus_malformed_emotion_file(tmp_path: Path) -> None:
    make_ckplus(tmp_path)
    (tmp_path / "Emotion" / "S005" / "001" / "S005_001_00000004_emotion.txt").write_text("disgust\n")
    with pytest.raises(DataFormatError, match=r"S005_001_00000004_emotion\.txt, line 1: expected one number"):
        read_dataset("ckplus", str(tmp_path))
    with pytest.raises(DataFormatError, match="cohn-kanade-images/ and Emotion/"):
        read_dataset("ckplus", str(tmp_path / "Emotion"))


def test_ckplus48_unchanged(tmp_path: Path) -> None:
    split = read_dataset("ckplus48", str(make_ckplus48(tmp_path)))["all"]
    assert labels_of(split) == [E["anger"], E["sad"]] and split.samples[0].subject == "S010"
    assert sum(split.skipped.values()) == 1


# --- JAFFE, ExpW -------------------------------------------------------------------------------

def test_jaffe_codes_and_subjects(tmp_path: Path) -> None:
    split = read_dataset("jaffe", str(make_jaffe(tmp_path)))["all"]
    assert [(sample.subject, sample.label) for sample in split.samples] == [
        ("KA", E["anger"]), ("KA", E["neutral"]), ("KL", E["happy"]), ("KL", E["sad"]),
        ("TM", E["fear"]), ("TM", E["surprise"]), ("YM", E["disgust"]),
    ]
    assert dict(split.skipped) == {"unknown expression code XX": 1, "file name is not SUBJECT.CODEn.NUMBER": 1}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no images named like KA.AN1.39.tiff"):
        read_dataset("jaffe", str(tmp_path / "empty"))


def test_expw_boxes_labels_and_skips(tmp_path: Path) -> None:
    split = read_dataset("expw", str(make_expw(tmp_path)))["all"]
    assert [(sample.label, sample.box) for sample in split.samples] == [
        (E["anger"], (106.0, 28.0, 193.0, 115.0)),
        (E["happy"], (200.0, 30.0, 260.0, 90.0)),
        (E["neutral"], (5.0, 5.0, 50.0, 60.0)),
    ]
    assert dict(split.skipped) == {"label 7 not in 0..6": 1, "empty face box": 1, "image file missing": 1}
    with open(tmp_path / "label" / "label.lst", "a") as handle:
        handle.write("x.jpg 0 1 2 3 4 5\n")
    with pytest.raises(DataFormatError, match=r"label\.lst, line 7: expected 8 fields"):
        read_dataset("expw", str(tmp_path))


# --- generic folder and CSV manifest -----------------------------------------------------------

def test_folder_synonyms_and_unknown_classes(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mapped", {"Happiness": 2, "sadness": 1, "ANGRY": 1, "neutral": 1})
    (root / "neutral" / "notes.txt").write_text("not an image")
    split = read_dataset("folder", str(root))["all"]
    assert split.class_counts(EMOTIONS) == {**{name: 0 for name in EMOTIONS}, "happy": 2, "sad": 1, "anger": 1, "neutral": 1}
    assert dict(split.skipped) == {"not an image file": 1}
    own = make_folder(tmp_path / "own", {"dog": 1, "cat": 2, "happy": 1})
    with pytest.raises(DataFormatError, match=r"unknown class names \['cat', 'dog'\].*class_names="):
        read_dataset("folder", str(own))
    names = folder_class_names(str(own))
    assert names == ["cat", "dog", "happy"]
    assert labels_of(read_dataset("folder", str(own), class_names=names)["all"]) == [0, 0, 1, 2]


def test_csv_manifest(tmp_path: Path) -> None:
    splits = read_dataset("csv", str(make_manifest(tmp_path)))
    train, test = splits["train"], splits["test"]
    assert labels_of(train) == [E["happy"], NO_LABEL]
    assert train.samples[0].path == str(tmp_path / "imgs" / "a.jpg") and train.samples[0].subject == "p1"
    assert (train.samples[0].valence, train.samples[0].arousal) == (0.3, -0.2)
    assert train.samples[1].valence == 0.5 and math.isnan(train.samples[1].arousal)
    assert labels_of(test) == [E["contempt"]] and dict(test.skipped) == {"image file missing": 1}


@pytest.mark.parametrize(
    "header, row, message",
    [
        (["file", "label"], ["a.jpg", "happy"], r"line 1: missing columns \['path'\]"),
        (["path", "label"], ["a.jpg", "meh"], r"line 2: unknown class names \['meh'\]"),
        (["path", "label", "valence"], ["a.jpg", "happy", "high"], r"line 2: valence must be a number or empty"),
        (["path", "label"], ["a.jpg", "9"], r"line 2: label index 9 is outside 0\.\.7"),
        (["path", "label"], ["a.jpg"], r"line 2: expected 2 fields like the header"),
    ],
)
def test_csv_manifest_malformed(tmp_path: Path, header: list[str], row: list[str], message: str) -> None:
    write_image(tmp_path / "a.jpg")
    with open(tmp_path / "m.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, row])
    with pytest.raises(DataFormatError, match=message):
        read_dataset("csv", str(tmp_path / "m.csv"))


# --- deepfever data inspect --------------------------------------------------------------------

def test_cli_inspect_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_rafdb(tmp_path)
    assert main(["data", "inspect", "--format", "rafdb", "--root", str(tmp_path), "--option", "aligned=false"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["train"]["samples"] == 7
    assert report["splits"]["train"]["classes"]["surprise"] == 1
    assert report["splits"]["train"]["skipped"] == {"label 9 not in 1..7": 1}
    assert report["splits"]["test"]["classes"]["neutral"] == 1


def test_cli_inspect_fec_before_fetch_reports_the_triplets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 9.15: before fetch-fec, inspect said 0 samples and nothing about the CSV's triplets."""
    make_fec(tmp_path)
    write_image(tmp_path / "images" / (fec_face_stem(FecFace(FACE_A[0], (0.1, 0.2, 0.5, 0.6))) + ".png"))
    assert main(["data", "inspect", "--format", "fec", "--root", str(tmp_path)]) == 0
    train = json.loads(capsys.readouterr().out)["splits"]["train"]
    assert train["triplets"] == 2 and train["triplets_by_type"] == {"ONE_CLASS_TRIPLET": 1, "TWO_CLASS_TRIPLET": 1}
    assert (train["faces"], train["faces_fetched"], train["triplets_with_all_images"]) == (4, 1, 0)
    assert train["samples"] == 1 and sum(train["rows_skipped"].values()) == 3


def test_cli_inspect_own_classes_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_folder(tmp_path, {"dog": 1, "cat": 2})
    assert main(["data", "inspect", "--format", "folder", "--root", str(tmp_path), "--option", 'class_names=["cat","dog"]']) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["all"]["classes"] == {"cat": 2, "dog": 1}
    assert main(["data", "inspect", "--format", "nope", "--root", str(tmp_path)]) == 2
    assert "valid formats: affectnet" in capsys.readouterr().err
    assert main(["data", "inspect", "--format", "folder", "--root", str(tmp_path), "--option", "class_names"]) == 2
