"""The extraction run: inputs -> chunks -> parts -> manifest -> lock -> merge, in one object.

Why a library object and not CLI code: the guarantees of a long job (no row lost, mixed or repeated;
resumable after ``kill -9``; one writer per output; bounded memory whatever the input) must hold for
``deepfever extract``, for Python users and for every ``torchrun`` rank alike, so they live here once.

How: every run works chunk by chunk in ``OUT.parts/`` (see ``deepfever.io.parts``), streaming each
chunk's rows to Parquet as batches complete; when every chunk is written the chunks are streamed into
``OUT`` with its failures file (always written, possibly empty, so both always come from the same
run) and its metadata (model fingerprint and settings). The output is locked (``.OUT.parts.lock``)
from before the first check to the end of the merge. A run without ``resume`` or an explicit chunk
size removes its parts folder once the output is written; a killed one leaves it for ``resume``.

Outputs never land on an input (checked by real path, ``overwrite`` or not). Inputs are recorded by
absolute path, so a table names files that resolve from any folder. The failures file is written
before the table, and the table last of all: a table on disk is complete with its sidecars, and a
merge killed half-way (sidecars without their table, temporary files) is finished by ``resume``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from deepfever._version import __version__
from deepfever.defaults import CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from deepfever.errors import OVERWRITE, DeepFeverError, Option, OptionMessage
from deepfever.io.lock import RunLock
from deepfever.io import parts as store
from deepfever.io.atomic import atomic_write, refuse_overwrite, remove_leftover_temporaries
from deepfever.io.failures import failures_path_for, write_failures
from deepfever.io.tables import TABLE_FORMATS, metadata_path_for, table_writer

from deepfever.pipeline.report import ExtractionReport

if TYPE_CHECKING:
    from deepfever.api import Extractor

logger = logging.getLogger(__name__)

ROW_BATCH = 1024
"""Rows buffered before they are appended to a chunk file: about 2.5 MB, whatever the length of a video."""
WAIT_SECONDS = 0.5
"""How often rank 0 looks for the other ranks' chunks before it merges."""


class OutputNotWritableError(DeepFeverError, PermissionError):
    """An output (table, failures file, annotated image or video) cannot be written where it was asked for."""


class ExtractionRun:
    """Extract every face of ``inputs`` into ``output``, resumable, shardable and locked.

    The constructor only stores settings; ``run(inputs)`` does the work and returns the report.

    Args:
        extractor: an ``Extractor`` (loaded on first use; under ``torchrun`` a CUDA extractor uses the
            process's own GPU).
        output: ``OUT.parquet``, ``OUT.csv``, ``OUT.jsonl`` or ``OUT.npz``.
        fps: videos: frames per second to process (``None``: every frame).
        smoothing: videos: per-track exponential moving-average weight in [0, 1); adds ``*_smooth`` columns.
        chunk_size: inputs per saved chunk (default ``DEFAULT_CHUNK_SIZE``); giving it keeps the parts.
        resume: continue the run whose chunks are in ``OUT.parts/`` (inputs changed since are redone).
        overwrite: replace existing outputs and start a parts folder again.
        annotate_dir: also write each image with its faces drawn, mirroring the inputs' relative paths.
        annotate_video_dir: also write each video with its tracks drawn, likewise.
        save_crops: also write every image face's aligned crop (what ``Extractor.embed`` takes) as
            ``DIR/<relative path>/<stem>.face<k>.png``; the folder must be empty unless ``overwrite``.

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) rank r takes chunks r, r + W, ...; rank 0 holds
    the lock, checks the parts folder before the others start, and merges once every chunk is written.

    Example:
        >>> report = ExtractionRun(Extractor(), "faces.parquet", fps=5).run(["photos/", "clip.mp4"])  # doctest: +SKIP
        >>> report.summary()  # doctest: +SKIP
    """

    def __init__(self, extractor: Extractor, output: str | os.PathLike, *, fps: float | None = None, smoothing: float = 0.0,
                 chunk_size: int | None = None, resume: bool = False, overwrite: bool = False,
                 annotate_dir: str | os.PathLike | None = None, annotate_video_dir: str | os.PathLike | None = None,
                 save_crops: str | os.PathLike | None = None) -> None:
        self.extractor = extractor
        self.output = Path(output)
        self.fps = fps
        self.smoothing = smoothing
        self.chunk_size = chunk_size
        self.resume = resume
        self.overwrite = overwrite
        self.annotate_dir = annotate_dir
        self.annotate_video_dir = annotate_video_dir
        self.save_crops = save_crops

    @property
    def parts_dir(self) -> Path:
        return store.parts_dir_for(self.output)

    def run(self, inputs: Iterable[str | os.PathLike], progress: Callable[[int], None] | None = None) -> ExtractionReport:
        """Do the work (or this rank's share); the report covers the whole run once it is merged.

        Raises, before any extraction: ``ValueError`` (bad settings or format), ``FileNotFoundError``
        (inputs that match nothing), ``FileExistsError`` (existing outputs without ``overwrite``),
        ``RunLockedError`` (another run holds the output), ``OutputNotWritableError``.
        """
        files = self.plan(inputs)
        rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        lock = RunLock(self.parts_dir.with_name(f".{self.parts_dir.name}.lock"), str(self.output)) if rank == 0 else None
        try:
            manifest = self._start(files, rank, world_size, lock)
            mine = [index for index in range(rank, len(manifest["chunks"]), world_size)
                    if index not in store.done_chunks(self.parts_dir)]
            said = logging.INFO if world_size > 1 or len(mine) < len(manifest["chunks"]) else logging.DEBUG  # news: shards, a resume
            logger.log(said, "rank %d of %d: %d of %d chunks to do in %s", rank, world_size, len(mine), len(manifest["chunks"]),
                       self.parts_dir)
            records = [self._extract_chunk(index, files[slice(*manifest["chunks"][index])], progress) for index in mine]
            if rank != 0:
                logger.info("rank %d is done; rank 0 writes %s once every chunk is in", rank, self.output)
                return _combine_reports(records)
            self._wait_for_chunks(manifest)
            report = self._merge(manifest)
            self._draw_and_crop()
            if not (self.resume or self.chunk_size is not None or world_size > 1):
                shutil.rmtree(self.parts_dir)
            return report
        finally:
            if lock:
                lock.release()

    # -- before any work -----------------------------------------------------------------
    def plan(self, inputs: Iterable[str | os.PathLike]) -> list[Path]:
        """The files ``run`` will process, in order (images first, then videos); checks the settings, writes nothing."""
        from deepfever.io.images import IMAGE_SUFFIXES
        from deepfever.io.inputs import VIDEO_SUFFIXES, expand_inputs

        check_video_settings("ExtractionRun", self.fps, self.smoothing)
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"ExtractionRun: chunk size must be at least 1, got {self.chunk_size}")
        if self.output.suffix.lower() not in TABLE_FORMATS:
            raise ValueError(f"unknown output format {self.output.suffix or '(none)'!r} for {self.output}; "
                             f"use one of {', '.join(TABLE_FORMATS)}")
        files = expand_inputs(inputs, IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images or videos found in {', '.join(map(str, inputs))}")
        # Images before videos, as Extractor.extract orders its rows, so joined chunks equal one single run.
        files = [Path(os.path.abspath(path)) for path in files]  # rows name files wherever the table is read
        videos = [path for path in files if path.suffix.lower() in VIDEO_SUFFIXES]
        return [path for path in files if path.suffix.lower() not in VIDEO_SUFFIXES] + videos

    def _check_outputs(self, files: Sequence[Path]) -> None:
        """Every file the run will write can be written, lands on no input and replaces nothing unasked;
        run under the lock. With ``resume``, sidecars without their table are a killed merge's and are replaced."""
        self._refuse_outputs_on_inputs(files)
        _check_table_targets(self.output, self.overwrite, leftovers_allowed=self.resume)
        for target in self._annotation_targets(files).values():
            _check_writable(target, self.overwrite)
        if self.save_crops:
            crops = Path(self.save_crops)
            if crops.is_dir() and any(crops.iterdir()) and not self.overwrite:
                raise FileExistsError(OptionMessage(f"{crops} already holds files; pass ", OVERWRITE,
                                                    " to add crops to it, or choose an empty folder"))
            _check_writable(crops / "probe.png", overwrite=True)

    def _refuse_outputs_on_inputs(self, files: Sequence[Path]) -> None:
        """Refuse, whatever ``overwrite`` says, an output whose real path is an input's (``--annotate-dir``
        or ``--save-crops`` pointed at the input folder that holds ``x.annotated.jpg`` or ``x.face0.png``)."""
        from deepfever.io.inputs import VIDEO_SUFFIXES

        inputs = {os.path.realpath(path) for path in files}
        videos = [path for path in files if path.suffix.lower() in VIDEO_SUFFIXES]
        images = [path for path in files if path.suffix.lower() not in VIDEO_SUFFIXES]
        named = {target: "-o" for target in _table_targets(self.output)}
        named.update({target: "--annotate-dir" for target in _mirrored(files, images, self.annotate_dir, ".annotated.jpg").values()})
        named.update({target: "--annotate-video-dir"
                      for target in _mirrored(files, videos, self.annotate_video_dir, ".annotated.mp4").values()})
        for target, flag in named.items():
            if os.path.realpath(target) in inputs:
                raise OutputNotWritableError(f"refusing to write {target}: it is one of the inputs; choose another {flag} "
                                             "(outputs never replace an input, even with --overwrite)")
        crops = _mirrored(files, images, self.save_crops, "")
        by_folder: dict[str, set[str]] = {}
        for real in inputs:
            by_folder.setdefault(os.path.dirname(real), set()).add(os.path.basename(real))
        for base in crops.values():
            pattern = re.compile(re.escape(base.name) + r"\.face\d+\.png")
            victim = next((name for name in sorted(by_folder.get(os.path.realpath(base.parent), ())) if pattern.fullmatch(name)), None)
            if victim:
                raise OutputNotWritableError(f"refusing to write {base.parent / victim}: it is one of the inputs; choose another "
                                             "--save-crops folder (outputs never replace an input, even with --overwrite)")

    def _annotation_targets(self, files: Sequence[Path]) -> dict[str, Path]:
        """Input path -> annotated copy (images in ``annotate_dir``, videos in ``annotate_video_dir``)."""
        from deepfever.io.inputs import VIDEO_SUFFIXES

        videos = [path for path in files if path.suffix.lower() in VIDEO_SUFFIXES]
        images = [path for path in files if path.suffix.lower() not in VIDEO_SUFFIXES]
        targets = _mirrored(files, images, self.annotate_dir, ".annotated.jpg")
        if self.annotate_video_dir is not None and videos:
            from deepfever.video.annotate import annotated_video_suffix  # .mp4 (H.264) or .webm (VP8): what browsers play

            targets.update(_mirrored(files, videos, self.annotate_video_dir, ".annotated" + annotated_video_suffix()))
        return targets

    def _draw_and_crop(self) -> None:
        """Annotated copies and aligned crops, from the rows in the parts folder, one input at a time."""
        from deepfever.extraction.annotate import annotate_file
        from deepfever.io.inputs import VIDEO_SUFFIXES

        files = [Path(name) for name in store.read_inputs(self.parts_dir)]
        targets = self._annotation_targets(files)
        crops = _mirrored(files, [path for path in files if path.suffix.lower() not in VIDEO_SUFFIXES], self.save_crops, "")
        if not targets and not crops:
            return
        columns = [column for column in store.parts_columns(self.parts_dir) if column != "embedding"]
        batches = store.iter_parts(self.parts_dir, columns)
        for path, rows in _by_input(batches):
            if path in targets:
                annotate_file(path, rows, targets[path], fps=self.fps)
            if path in crops:
                _save_crops(path, rows, crops[path], self.extractor.engine_)

    def _identity(self) -> dict[str, Any]:
        """Everything besides the inputs that changes the rows; a resumed run must match it."""
        extractor = self.extractor
        return {**extractor.fingerprint_, "detector": extractor.stage_.detector, "detector_options": _jsonable(extractor.detector_options),
                "flip_tta": extractor.flip_tta, "prior": extractor.prior_, "fps": self.fps, "smooth": self.smoothing}

    def _start(self, files: list[Path], rank: int, world_size: int, lock: RunLock | None) -> dict[str, Any]:
        """Rank 0 takes the lock and creates or checks the parts folder while the others wait."""
        context = None
        if world_size > 1:
            from deepfever.models.distributed import init_distributed

            context = init_distributed(self.extractor.device)
            if context.device.type == "cuda":
                self.extractor.device = str(context.device)
        try:
            error = None
            if lock:
                try:
                    _take(lock, self.output)
                    self._check_outputs(files)
                except OSError as caught:
                    error = caught
            self.extractor.load()
            self.extractor.detector_for()  # missing detector weights stop the run here, not at the first image
            names = [str(path) for path in files]
            manifest = store.make_manifest(self._identity(), names, self.chunk_size or DEFAULT_CHUNK_SIZE, self.output.name)
            if lock and not error:
                try:
                    manifest = store.open_parts(self.parts_dir, manifest, store.input_states(names), self.resume, self.overwrite)
                except (FileExistsError, ValueError) as caught:
                    error = caught
            if context:
                error = context.broadcast(error)
            if error:
                raise error
            if not lock:
                store.check_same_run(self.parts_dir, store.read_manifest(self.parts_dir), manifest)
        finally:
            if context:
                context.close()  # start-up is the only collective step: ranks then work at their own pace
        return manifest

    # -- the work --------------------------------------------------------------------------
    def _extract_chunk(self, index: int, files: list[Path], progress: Callable[[int], None] | None) -> dict[str, Any]:
        """Stream one chunk's rows into its Parquet file, then mark it done with its report."""
        from deepfever.io.inputs import VIDEO_SUFFIXES

        extractor = self.extractor
        video = any(path.suffix.lower() in VIDEO_SUFFIXES for path in files)
        columns = extractor.columns(video=video, smoothed=bool(self.smoothing))
        rows: list[dict[str, Any]] = []
        with table_writer(store.chunk_table_path(self.parts_dir, index), columns) as write:
            stream = extractor.iter_extract(files, progress=progress, fps=self.fps, smoothing=self.smoothing)
            for row in stream:
                rows.append(row)
                if len(rows) >= ROW_BATCH:
                    write(pd.DataFrame(rows, columns=columns))
                    rows.clear()
            write(pd.DataFrame(rows, columns=columns))
        record = stream.report.as_dict()
        store.mark_chunk_done(self.parts_dir, index, record)
        return record

    def _wait_for_chunks(self, manifest: dict[str, Any]) -> None:
        """Rank 0 waits for the other ranks' chunks (torchrun stops every rank if one fails)."""
        logged = False
        while missing := store.missing_chunks(self.parts_dir, manifest):
            if not logged:
                logger.info("rank 0 waits for %d chunks of the other processes before writing %s", len(missing), self.output)
                logged = True
            time.sleep(WAIT_SECONDS)

    def _merge(self, manifest: dict[str, Any]) -> ExtractionReport:
        return merge_parts(self.parts_dir, self.output, metadata=self.metadata(manifest["inputs"]))

    def metadata(self, inputs: int) -> dict[str, Any]:
        """What the output records about how it was made (Parquet metadata or ``OUT.<format>.meta.json``)."""
        return {"deepfever_version": __version__, **self._identity(), "face_stage": self.extractor.stage_.to_dict(),
                "batch_size": self.extractor.batch_size, "inputs": inputs}



def merge_parts(folder: str | os.PathLike, output: str | os.PathLike, metadata: dict[str, Any] | None = None) -> ExtractionReport:
    """Stream every chunk of ``folder`` into ``output`` and write its failures file; returns the joined report.

    The caller holds the folder's lock (``ExtractionRun`` does; ``merge_parts_locked`` takes it).
    """
    folder, output = Path(folder), Path(output)
    manifest = store.read_manifest(folder)
    records = store.check_parts(folder, manifest)
    report = _combine_reports(records)
    columns = store.parts_columns(folder, manifest)
    for target in _table_targets(output):  # what a merge killed before left; we hold the lock
        remove_leftover_temporaries(target)
    write_failures(report.failures, failures_path_for(output))
    with table_writer(output, columns, metadata) as write:  # the table appears last
        for batch in store.iter_parts(folder, columns):
            write(batch)
    return report


def merge_parts_locked(folder: str | os.PathLike, output: str | os.PathLike, overwrite: bool) -> ExtractionReport:
    """``deepfever merge``: refuse existing outputs without ``overwrite``, lock the folder, merge."""
    folder, output = Path(folder), Path(output)
    lock = RunLock(folder.with_name(f".{folder.name}.lock"), str(folder))
    _take(lock, output)
    try:
        _check_table_targets(output, overwrite, leftovers_allowed=True)
        metadata = store.read_manifest(folder)
        return merge_parts(folder, output, {"deepfever_version": __version__,
                                            **{key: value for key, value in metadata.items() if key not in ("chunks", "version")}})
    finally:
        lock.release()


def _combine_reports(records: list[dict[str, Any]]) -> ExtractionReport:
    """Counts and seconds add up; lists (videos, failures) follow one another in chunk order."""
    combined: dict[str, Any] = {}
    for field in dataclasses.fields(ExtractionReport):
        values = [record[field.name] for record in records]
        combined[field.name] = [item for value in values for item in value] if field.name in ("videos", "failures") else sum(values)
    return ExtractionReport(**combined)


def _mirrored(files: Sequence[Path], chosen: Sequence[Path], folder: str | os.PathLike | None, suffix: str) -> dict[str, Path]:
    """Input -> ``folder/<path below the inputs' common folder>`` with ``suffix`` after the stem, so
    ``a/x.png`` and ``b/x.png`` never collide."""
    if folder is None or not chosen:
        return {}
    root = Path(os.path.commonpath([str(path.resolve().parent) for path in files]))
    mirrored = {}
    for path in chosen:
        relative = path.resolve().relative_to(root)
        mirrored[str(path)] = Path(folder) / relative.with_name(relative.stem + suffix)
    return mirrored


def _by_input(batches: Iterable[pd.DataFrame]) -> Iterable[tuple[str, pd.DataFrame]]:
    """(path, its rows) from batches in input order; an input's rows may span batches, never interleave."""
    held: list[pd.DataFrame] = []
    for batch in batches:
        for path, rows in batch.groupby("path", sort=False):
            if held and held[0]["path"].iloc[0] != path:
                yield held[0]["path"].iloc[0], pd.concat(held)
                held = []
            held.append(rows)
    if held:
        yield held[0]["path"].iloc[0], pd.concat(held)


def _save_crops(path: str, rows: pd.DataFrame, base: Path, engine) -> None:
    """The aligned crop of each face of an image, cut again from the landmarks in its rows (no detection)."""
    from PIL import Image

    from deepfever.faces.types import Face
    from deepfever.io.images import load_image

    faces = [Face(box=np.array([row.box_x1, row.box_y1, row.box_x2, row.box_y2], np.float32),
                  landmarks=np.asarray(row.landmarks, np.float32).reshape(5, 2), score=float(row.score))
             for row in rows.itertuples(index=False)]
    for row, crop in zip(rows.itertuples(index=False), engine.align(load_image(path), faces)):
        with atomic_write(base.with_name(f"{base.name}.face{row.face}.png")) as tmp:
            Image.fromarray(crop).save(tmp, format="PNG")


def _take(lock: RunLock, output: Path) -> None:
    """Acquire ``lock``, creating the output's folder; a folder that cannot hold files is named, not a traceback."""
    try:
        lock.path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as error:
        if isinstance(error, DeepFeverError):  # the lock is held by another run
            raise
        raise OutputNotWritableError(f"cannot write {output}: {error.strerror} ({error.filename}); choose another -o") from error


def _table_targets(output: Path) -> list[Path]:
    """The table and its sidecars (failures, and metadata beside formats that cannot hold it)."""
    return [output, failures_path_for(output)] + ([] if output.suffix.lower() == ".parquet" else [metadata_path_for(output)])


def check_video_settings(owner: str, fps: float | None, smoothing: float) -> None:
    """Refuse a frame rate or smoothing weight no video run can use; ``owner`` names the caller in the message."""
    if fps is not None and not fps > 0:
        raise ValueError(OptionMessage(f"{owner}: ", Option("fps", "--fps"), f" must be positive, got {fps}; pass ",
                                       Option("fps=5", "--fps 5"), ", say, or leave it out for every frame"))
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(OptionMessage(f"{owner}: ", Option("smoothing", "--smooth"), f" must lie in [0, 1), got {smoothing}; "
                                       "pass ", Option("smoothing=0.6", "--smooth 0.6"), ", say, or 0 for none"))


def _check_table_targets(output: Path, overwrite: bool, leftovers_allowed: bool) -> None:
    """The table and its sidecars can be written; with ``leftovers_allowed``, sidecars whose table is
    absent (a merge killed before the table, which is written last) may be replaced."""
    leftovers = leftovers_allowed and not output.exists()
    for target in _table_targets(output):
        if target != output and leftovers and target.exists():
            logger.warning("replacing %s, left without its table by an interrupted merge", target)
        _check_writable(target, overwrite or (leftovers and target != output))


def _check_writable(target: Path, overwrite: bool) -> None:
    """Refuse an existing file without ``overwrite`` and a place that cannot hold a file, before any work."""
    refuse_overwrite(target, overwrite)
    folder = target.parent
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), Path("."))
    if not existing.is_dir():
        raise OutputNotWritableError(f"cannot write {target}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"cannot write {target}: no permission to write in {existing}; choose another path")
    if target.is_dir():
        raise OutputNotWritableError(f"cannot write {target}: it is a folder; name a file")


def _jsonable(value: Any) -> Any:
    """Detector options as JSON: paths become strings, so a manifest compares equal when read back."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return str(value) if isinstance(value, os.PathLike) else value
