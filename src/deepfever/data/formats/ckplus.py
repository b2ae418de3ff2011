"""CK+ (Extended Cohn-Kanade), as its owners ship it (``ckplus``) and as the shared CK+48 layout (``ckplus48``).

``ckplus``: ``ROOT/cohn-kanade-images/S005/001/S005_001_00000011.png`` frame sequences (neutral to
peak) and ``ROOT/Emotion/S005/001/S005_001_00000011_emotion.txt`` holding one float code for the
sequence's peak frame. Only 327 of the 593 sequences carry an emotion file; the others are skipped
and counted. Code mapping (CK+ -> ours): 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear,
5 happy, 6 sadness -> sad, 7 surprise. ``last_frames`` labels that many frames ending at the peak;
``first_as_neutral`` adds each labelled sequence's first frame as neutral. An emotion file that is
not one number raises ``DataFormatError``; unknown codes and missing peak frames are skipped.

``ckplus48``: ``ROOT/<class>/Sxxx_yyy_zzzzzzzz.png``: 48x48 grey peak-expression frames.

In both, ``Sxxx`` is the subject, which probes use to keep a person out of their own test fold.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from deepfever.data.formats.base import DatasetSplit, Sample, register_format
from deepfever.labels import EMOTION_INDEX
from deepfever.errors import DataFormatError

logger = logging.getLogger(__name__)

CKPLUS_TO_EMOTION = {
    0: EMOTION_INDEX["neutral"],
    1: EMOTION_INDEX["anger"],
    2: EMOTION_INDEX["contempt"],
    3: EMOTION_INDEX["disgust"],
    4: EMOTION_INDEX["fear"],
    5: EMOTION_INDEX["happy"],
    6: EMOTION_INDEX["sad"],
    7: EMOTION_INDEX["surprise"],
}
EMOTION_SUFFIX = "_emotion.txt"

CKPLUS48_FOLDERS = {
    "anger": "anger",
    "contempt": "contempt",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "sadness": "sad",
    "surprise": "surprise",
}


@register_format("ckplus48")
def read_ckplus48(root: str) -> dict[str, DatasetSplit]:
    """Read the CK+48 layout as one ``all`` split with subjects (folds are the probe's business)."""
    base = Path(root)
    samples: list[Sample] = []
    skipped: Counter = Counter()
    for folder, emotion in CKPLUS48_FOLDERS.items():
        for path in sorted((base / folder).glob("*.png")):
            subject = path.name.split("_")[0]
            if not subject.startswith("S"):
                skipped[f"file name without subject prefix: {path.name}"] += 1
                continue
            samples.append(Sample(path=str(path), label=EMOTION_INDEX[emotion], subject=subject))
    if not samples:
        raise DataFormatError(f"read_ckplus48: no <class>/S*.png files under {root}; expected folders {sorted(CKPLUS48_FOLDERS)}")
    return {"all": DatasetSplit("all", samples, skipped)}


def read_emotion_code(path: Path) -> float:
    """Parse a CK+ ``*_emotion.txt`` file (one float such as ``   3.0000000e+00``)."""
    text = path.read_text().strip()
    try:
        return float(text)
    except ValueError as error:
        raise DataFormatError(f"{path}, line 1: expected one number (the CK+ emotion code), got {text!r}") from error


@register_format("ckplus")
def read_ckplus(root: str, last_frames: int = 1, first_as_neutral: bool = False) -> dict[str, DatasetSplit]:
    """Read the official CK+ tree as one ``all`` split of labelled frames with subjects.

    Example:
        >>> splits = read_dataset("ckplus", "data/CK+", last_frames=3, first_as_neutral=True)  # doctest: +SKIP
    """
    if last_frames < 1:
        raise ValueError(f"read_ckplus: last_frames must be at least 1, got {last_frames}")
    base = Path(root)
    images, emotions = base / "cohn-kanade-images", base / "Emotion"
    if not images.is_dir() or not emotions.is_dir():
        raise DataFormatError(f"read_ckplus: expected folders cohn-kanade-images/ and Emotion/ under {root}")
    samples: list[Sample] = []
    skipped: Counter = Counter()
    for sequence in sorted(path for path in images.glob("S*/*") if path.is_dir()):
        subject = sequence.parent.name
        frames = sorted(sequence.glob("*.png"))
        emotion_files = sorted((emotions / subject / sequence.name).glob(f"*{EMOTION_SUFFIX}"))
        if not frames:
            reason = "sequence without frames"
        elif not emotion_files:
            reason = "sequence without emotion label"
        else:
            code = read_emotion_code(emotion_files[-1])
            peak = sequence / (emotion_files[-1].name[: -len(EMOTION_SUFFIX)] + ".png")
            if code not in CKPLUS_TO_EMOTION:
                reason = f"emotion code {code:g} not in 0..7"
            elif peak not in frames:
                reason = "peak frame named by the emotion file missing"
            else:
                end = frames.index(peak) + 1
                labelled = frames[max(0, end - last_frames):end]
                if first_as_neutral and frames[0] not in labelled:
                    samples.append(Sample(path=str(frames[0]), label=EMOTION_INDEX["neutral"], subject=subject))
                samples.extend(Sample(path=str(frame), label=CKPLUS_TO_EMOTION[int(code)], subject=subject) for frame in labelled)
                continue
        skipped[reason] += 1
        logger.debug("%s: skipped, %s", sequence, reason)
    if not samples:
        raise DataFormatError(f"read_ckplus: no labelled sequence under {root}; expected Emotion/Sxxx/yyy/*{EMOTION_SUFFIX} files")
    return {"all": DatasetSplit("all", samples, skipped)}
