"""Extraction on Ray Data: the rows of ``deepfever extract``, from inputs on any number of machines (issue 20).

Why Ray: past one machine a batch job needs a scheduler, retries of lost tasks, GPUs per worker,
autoscaling and object-storage input; Ray Data has all of them, so our code here is only the
per-task function (``FaceRowTask``, which calls the one engine of ``deepfever.pipeline``) and the
layout of the output. ``ray`` is the optional extra ``deepfever[ray]``; nothing imports it before a
run starts.

The output is a Parquet dataset folder ``OUT``:

- ``OUT/part-<key>.parquet``: face rows with exactly the columns and metadata of ``extract``;
- ``OUT/_inputs/part-<key>.parquet``: one row per input (path, kind, faces, frames, reason), the
  record that the input is done (``reason`` is empty unless the input failed or was partly read);
- ``OUT/_run.json``: what makes the rows (model fingerprint, face stage, settings, columns);
- ``OUT.failures.csv`` beside the folder, as ``extract`` writes it.

pandas, pyarrow and Ray skip names starting with ``_`` when they read a folder, so
``pd.read_parquet(OUT)`` and ``deepfever.io.tables.read_table(OUT)`` give the face rows only.

Exactly once: a task (a group of images, or one whole video) writes its face file and then its
inputs file, each atomically, under a key derived from its input names. A task that Ray retries after
a lost worker replaces its own files, so no row is doubled; a face file without its inputs file (a
task killed between the two) is deleted when the next run on the folder starts, and its inputs are
redone. A run on an existing folder skips the inputs already recorded there (the engine's resume);
a second concurrent run is refused by the same lock as ``extract``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import pandas as pd

from deepfever._iterate import batched
from deepfever.extraction.run import ROW_BATCH, ExtractionRun, check_video_settings
from deepfever.io.atomic import atomic_write
from deepfever.io.failures import failures_path_for, write_failures
from deepfever.io.lock import RunLock
from deepfever.io.tables import table_writer
from deepfever.pipeline.report import ExtractionReport

if TYPE_CHECKING:
    from deepfever.api import Extractor

logger = logging.getLogger(__name__)

IMAGES_PER_TASK = 64
"""Images one Ray task takes: enough to fill model batches, small enough that a retry redoes little."""
FETCH_THREADS = 8
"""Objects of a task fetched from storage at once."""
INPUTS_FOLDER = "_inputs"
RUN_FILE = "_run.json"
STATUS_COLUMNS = ["path", "kind", "faces", "frames", "reason"]
"""One row per input in ``OUT/_inputs``: ``reason`` is empty for an input that gave its rows in full."""


class RayExtraction:
    """Extract every face of ``inputs`` into the Parquet dataset folder ``output`` with Ray Data.

    The constructor only stores settings; ``run(inputs)`` does the work and returns this run's report.

    Args:
        extractor: the ``Extractor`` whose settings every Ray worker rebuilds (one per worker).
        output: the dataset folder (created; a folder this class did not write is refused).
        fps: videos: frames per second to process (``None``: every frame).
        smoothing: videos: per-track moving-average weight in [0, 1); adds ``*_smooth`` columns.
        workers: Ray actors, each with its own model and detector (``None``: as many as the cluster's
            CPUs, or GPUs divided by ``gpus_per_worker``).
        gpus_per_worker: GPUs each actor reserves; above 0 the model runs on CUDA.
        images_per_task: images per Ray task (a video is always one task: tracks are per video).
        address: the Ray cluster to join (``None``: the running one, or a local one started for the run).
        overwrite: delete what an earlier run wrote in ``output`` and start again.

    Example:
        >>> report = RayExtraction(Extractor(), "faces.parquet", workers=4).run(["s3://bucket/photos/"])  # doctest: +SKIP
        >>> pd.read_parquet("faces.parquet").shape  # doctest: +SKIP
    """

    def __init__(self, extractor: Extractor, output: str | os.PathLike, *, fps: float | None = None, smoothing: float = 0.0,
                 workers: int | None = None, gpus_per_worker: float = 0.0, images_per_task: int = IMAGES_PER_TASK,
                 address: str | None = None, overwrite: bool = False) -> None:
        self.extractor = extractor
        self.output = Path(output)
        self.fps = fps
        self.smoothing = smoothing
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.images_per_task = images_per_task
        self.address = address
        self.overwrite = overwrite

    # -- before any work -----------------------------------------------------------------
    def plan(self, inputs: Iterable[str | os.PathLike]) -> list[str]:
        """The inputs ``run`` processes (images first, then videos); checks the settings, writes nothing."""
        from deepfever.io.inputs import VIDEO_SUFFIXES

        check_video_settings("RayExtraction", self.fps, self.smoothing)
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"RayExtraction: workers must be at least 1 or None (the cluster's size), got {self.workers}; "
                             "pass --workers 4, say")
        if self.gpus_per_worker < 0:
            raise ValueError(f"RayExtraction: gpus_per_worker must be 0 or more, got {self.gpus_per_worker}; pass --gpus-per-worker 1")
        if self.images_per_task < 1:
            raise ValueError(f"RayExtraction: images_per_task must be at least 1, got {self.images_per_task}")
        if self.output.exists() and not self.output.is_dir():
            raise FileExistsError(f"{self.output} is a file; --engine ray writes a dataset folder: choose a folder for -o")
        files = list_inputs(inputs)
        if not files:
            raise FileNotFoundError(f"no images or videos found in {', '.join(map(str, inputs))}")
        videos = [name for name in files if _suffix(name) in VIDEO_SUFFIXES]
        return [name for name in files if _suffix(name) not in VIDEO_SUFFIXES] + videos

    # -- the run -----------------------------------------------------------------------------
    def run(self, inputs: Iterable[str | os.PathLike]) -> ExtractionReport:
        """Process the inputs not yet in ``output``; the report covers this run (failures: the whole folder's).

        Raises, before any extraction: ``ValueError`` (bad settings, or a folder made with other
        settings), ``FileNotFoundError`` (inputs that match nothing), ``FileExistsError`` (a folder
        this class did not write), ``RunLockedError`` (another run holds the folder), ``ImportError``
        (no ``ray``).
        """
        from deepfever.io.inputs import VIDEO_SUFFIXES
        from deepfever.io.optional import import_optional

        files = self.plan(inputs)
        import_optional("RayExtraction.run", ("ray", "ray.data"), "ray")
        started = time.perf_counter()
        self.output.parent.mkdir(parents=True, exist_ok=True)
        lock = RunLock(self.output.with_name(f".{self.output.name}.lock"), str(self.output)).acquire()
        try:
            extractor = self._describing_extractor()
            columns = extractor.columns(video=any(_suffix(name) in VIDEO_SUFFIXES for name in files),
                                        smoothed=bool(self.smoothing))
            metadata = ExtractionRun(extractor, self.output, fps=self.fps, smoothing=self.smoothing).metadata(len(files))
            done = self._open(columns, metadata)
            todo = [name for name in files if name not in done]
            logger.info("%d of %d inputs already in %s; %d to do", len(files) - len(todo), len(files), self.output, len(todo))
            statuses = self._execute(plan_tasks(todo, self.images_per_task), columns, metadata) if todo else []
            all_statuses = read_statuses(self.output)
            write_failures(all_statuses[all_statuses["reason"].notna()].to_dict("records"), failures_path_for(self.output))
        finally:
            lock.release()
        return _report(statuses, time.perf_counter() - started)

    def _describing_extractor(self) -> Extractor:
        """The extractor whose columns and fingerprint the output records: ``extractor`` if it is loaded, else a
        CPU copy (the machine running the command may have no GPU when the workers do; rows do not depend on it)."""
        if hasattr(self.extractor, "engine_"):
            return self.extractor
        return type(self.extractor)(**{**self.extractor.get_params(), "device": "cpu"}).load()

    def _open(self, columns: list[str], metadata: dict[str, Any]) -> set[str]:
        """Create or check the folder (under the lock): same settings, no half-written task; the inputs done."""
        identity = {"columns": columns, **{key: value for key, value in metadata.items() if key not in ("inputs", "batch_size")}}
        run_file = self.output / RUN_FILE
        if self.output.is_dir() and any(self.output.iterdir()):
            if not run_file.is_file():
                raise FileExistsError(f"{self.output} holds files that deepfever extract --engine ray did not write; "
                                      "choose an empty or new folder for -o")
            if self.overwrite:
                shutil.rmtree(self.output)
                failures_path_for(self.output).unlink(missing_ok=True)
            else:
                recorded = json.loads(run_file.read_text())
                differing = sorted(key for key in identity.keys() | recorded.keys() if identity.get(key) != recorded.get(key))
                if differing:
                    raise ValueError(f"{self.output} was written with other settings ({', '.join(differing)} differ); "
                                     "pass --overwrite to start again, or choose another -o")
        if not run_file.is_file():
            with atomic_write(run_file) as tmp:
                tmp.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")
        _remove_unfinished(self.output)
        return set(read_statuses(self.output)["path"])

    def _execute(self, tasks: list[dict[str, Any]], columns: list[str], metadata: dict[str, Any]) -> list[dict[str, Any]]:
        """Run the tasks on an actor pool; returns their input records as they come back."""
        import ray

        started_here = not ray.is_initialized()
        if started_here:  # a runtime started for this run only: no dashboard to take CPU from the workers
            ray.init(address=self.address, logging_level=logging.WARNING, **({} if self.address else {"include_dashboard": False}))
        try:
            params = self.extractor.get_params()
            if self.gpus_per_worker > 0:
                params["device"] = "cuda"
            resources = ray.cluster_resources()
            if self.gpus_per_worker > 0 and not resources.get("GPU"):
                logger.warning("the Ray cluster has no GPU now; the workers wait until one joins (an autoscaler may add "
                               "GPU nodes); pass --gpus-per-worker 0 to run on CPUs")
            workers = self.workers or _cluster_workers(resources, self.gpus_per_worker)
            dataset = ray.data.from_items(tasks, override_num_blocks=len(tasks))
            dataset = dataset.map_batches(
                # Ray Data restarts a lost actor and retries its task (max_restarts and max_task_retries are -1).
                FaceRowTask, batch_size=1, batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=min(workers, len(tasks))),
                num_cpus=1, num_gpus=self.gpus_per_worker or None,
                fn_constructor_kwargs={"extractor_params": params, "output": str(self.output), "columns": columns,
                                       "metadata": metadata, "fps": self.fps, "smoothing": self.smoothing})
            return [row for batch in dataset.iter_batches(batch_size=None, batch_format="pandas")
                    for row in batch.to_dict("records")]
        finally:
            if started_here:
                ray.shutdown()


class FaceRowTask:
    """What ``Dataset.map_batches`` runs in each Ray actor: one ``Extractor`` per actor, tasks in, files out.

    A task is ``{"key", "paths", "video"}`` (``plan_tasks``); it writes ``OUT/part-<key>.parquet`` (its
    face rows, when it has any) and then ``OUT/_inputs/part-<key>.parquet`` (one record per input), and
    returns those records. Unreadable inputs and images without a face are records with a reason.
    """

    def __init__(self, extractor_params: dict[str, Any], output: str, columns: list[str], metadata: dict[str, Any],
                 fps: float | None, smoothing: float) -> None:
        from deepfever.api import Extractor

        self.extractor = Extractor(**extractor_params).load()
        self.output = Path(output)
        self.columns = columns
        self.metadata = metadata
        self.fps = fps
        self.smoothing = smoothing

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        records = [record for task in batch.to_dict("records") for record in self.run_task(task)]
        return pd.DataFrame(records, columns=STATUS_COLUMNS)

    def run_task(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        """Write one task's face file and inputs file; returns its input records."""
        paths = [str(path) for path in task["paths"]]
        report = ExtractionReport()
        rows = self._video_rows(paths[0], report) if task["video"] else self._image_rows(paths, report)
        faces: dict[str, int] = dict.fromkeys(paths, 0)
        with contextlib.ExitStack() as stack:
            write = None
            for batch in batched(rows, ROW_BATCH):
                for row in batch:
                    faces[row["path"]] += 1
                write = write or stack.enter_context(table_writer(self.output / f"part-{task['key']}.parquet", self.columns, self.metadata))
                write(pd.DataFrame(batch, columns=self.columns))
        reasons: dict[str, str] = {}
        for failure in report.failures:
            reasons[failure["path"]] = "; ".join(filter(None, [reasons.get(failure["path"]), failure["reason"]]))
        frames = {video["path"]: video["frames"] for video in report.videos}
        records = [{"path": path, "kind": "video" if task["video"] else "image", "faces": faces[path],
                    "frames": frames.get(path, 0), "reason": reasons.get(path)} for path in paths]
        with table_writer(self.output / INPUTS_FOLDER / f"part-{task['key']}.parquet", STATUS_COLUMNS) as write:
            write(pd.DataFrame(records, columns=STATUS_COLUMNS))
        return records

    def _image_rows(self, paths: list[str], report: ExtractionReport) -> Iterator[dict[str, Any]]:
        """The engine's rows (images decoded ahead, faces of several images in one model batch).

        Objects in storage are fetched in parallel first: one request waits tens of milliseconds, a
        task holds ``images_per_task`` of them.
        """
        with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
            sources = list(pool.map(_source, paths))
        items = []
        for path, source in zip(paths, sources):
            if isinstance(source, OSError):
                report.failures.append({"path": path, "reason": f"cannot read {path}: {source}"})
            else:
                items.append((path, source))
        yield from self.extractor.engine_.iter_image_rows(items, report)

    def _video_rows(self, path: str, report: ExtractionReport) -> Iterator[dict[str, Any]]:
        """Rows of one video, as ``extract`` gives them; a video in object storage is copied to local disk first."""
        with contextlib.ExitStack() as stack:
            local = path
            if _is_uri(path):
                try:
                    data = _read_bytes(path)
                except OSError as error:
                    report.failures.append({"path": path, "reason": f"cannot read {path}: {error}"})
                    return
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="deepfever-ray-"))
                local = str(Path(folder) / f"video{_suffix(path)}")
                Path(local).write_bytes(data)
            stream = self.extractor.iter_extract([local], fps=self.fps, smoothing=self.smoothing)
            for row in stream:
                yield {**row, "path": path}
            report.failures += [{**failure, "path": path} for failure in stream.report.failures]
            report.videos += [{**video, "path": path} for video in stream.report.videos]


# -- inputs and tasks -----------------------------------------------------------------------
def list_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Input names: local files, folders and globs (as ``extract`` expands them) and URIs pyarrow can read
    (``s3://bucket/photos/``, ``gs://…``, ``file:///…``: a file, or a folder searched recursively)."""
    from deepfever.io.images import IMAGE_SUFFIXES
    from deepfever.io.inputs import VIDEO_SUFFIXES, expand_inputs

    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    names = [str(item) for item in inputs]
    local = [name for name in names if not _is_uri(name)]
    found = [os.path.abspath(path) for path in expand_inputs(local, suffixes)] if local else []  # as extract names them
    for uri in (name for name in names if _is_uri(name)):
        found += _list_uri(uri, suffixes)
    return list(dict.fromkeys(found))


def plan_tasks(names: Sequence[str], images_per_task: int) -> list[dict[str, Any]]:
    """Groups of ``images_per_task`` images, then one task per video; each keyed by a hash of its names,
    so a retried or resumed task writes the same files."""
    from deepfever.io.inputs import VIDEO_SUFFIXES

    images = [name for name in names if _suffix(name) not in VIDEO_SUFFIXES]
    groups = [(images[start:start + images_per_task], False) for start in range(0, len(images), images_per_task)]
    groups += [([name], True) for name in names if _suffix(name) in VIDEO_SUFFIXES]
    return [{"key": hashlib.sha256("\n".join(paths).encode()).hexdigest()[:20], "paths": paths, "video": video}
            for paths, video in groups]


def read_statuses(output: str | os.PathLike) -> pd.DataFrame:
    """Every input record in ``OUT/_inputs`` (empty table when none)."""
    folder = Path(output) / INPUTS_FOLDER
    parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    if not parts:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in STATUS_COLUMNS})
    return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)


def _remove_unfinished(output: Path) -> None:
    """Face files whose inputs file is missing (a task killed between the two) and temporary files of dead writers."""
    finished = {part.name for part in (output / INPUTS_FOLDER).glob("part-*.parquet")}
    for part in output.glob("part-*.parquet"):
        if part.name not in finished:
            logger.info("removing %s: its task did not finish; its inputs are redone", part)
            part.unlink()
    for stale in [*output.glob(".part-*.tmp"), *(output / INPUTS_FOLDER).glob(".part-*.tmp")]:
        stale.unlink()


def _report(statuses: list[dict[str, Any]], seconds: float) -> ExtractionReport:
    images = [record for record in statuses if record["kind"] == "image"]
    videos = [record for record in statuses if record["kind"] == "video"]
    return ExtractionReport(
        images=len(images), images_with_faces=sum(1 for record in images if record["faces"]),
        faces=sum(int(record["faces"]) for record in statuses),
        videos=[{"path": record["path"], "frames": int(record["frames"]), "faces": int(record["faces"])} for record in videos],
        failures=[{"path": record["path"], "reason": record["reason"]} for record in statuses if record["reason"]],
        seconds=seconds)


def _cluster_workers(resources: dict[str, float], gpus_per_worker: float) -> int:
    """Actors that fit the cluster: one per CPU, or per ``gpus_per_worker`` GPUs."""
    if gpus_per_worker > 0:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1)))



def _is_uri(name: str) -> bool:
    return "://" in name


def _suffix(name: str) -> str:
    return Path(name.split("://", 1)[-1]).suffix.lower()


def _list_uri(uri: str, suffixes: frozenset[str]) -> list[str]:
    """A URI's file, or the media files below it (sorted); ``FileNotFoundError`` when it names nothing."""
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    scheme = uri.split("://", 1)[0]
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.File:
        return [uri]
    if info.type != fs.FileType.Directory:
        raise FileNotFoundError(f"no such file or folder: {uri}")
    found = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    return sorted(f"{scheme}://{entry.path}" for entry in found if entry.is_file and _suffix(entry.path) in suffixes)


def _source(path: str) -> Path | bytes | OSError:
    """What the engine decodes: a local path as it is, an object's bytes, or why they could not be read."""
    if not _is_uri(path):
        return Path(path)
    try:
        return _read_bytes(path)
    except OSError as error:
        return error


def _read_bytes(uri: str) -> bytes:
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()
