"""Plot emotion probabilities (and valence/arousal) of each face track over a video's time, smoothed over raw."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from deepfever.io.annotate import OTHER_COLOUR, PALETTE
from deepfever.io.figures import save_figure
from deepfever.pipeline.rows import SMOOTH_SUFFIX

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

SMOOTHED_NOTE = "thick: smoothed per track (p_*_smooth columns); thin, faint: raw per-frame values"
RAW_NOTE = "raw per-frame values (no smoothed columns in the table; extract with --smooth to add them)"
"""What a timeline's title says it shows: smoothed over raw, or raw only."""


def plot_timeline(table: pd.DataFrame, output_png: str | os.PathLike, track: int | Sequence[int] | None = None,
                  max_tracks: int = 6, video: str | None = None) -> Path:
    """Draw one panel per track of each video, the track with the most rows first, and write a PNG atomically.

    Track ids are per video (each video counts from 0, as in the table), so a table of several videos
    (or of images and videos, from ``deepfever extract``) is grouped by ``path`` and track; image rows
    are ignored. Each emotion has its colour of ``deepfever.io.annotate.PALETTE``. When the table has
    smoothed columns (``p_<emotion>_smooth``, from ``smoothing``/``--smooth``), they are drawn as thick
    lines over the raw values as thin faint ones, and the figure's title says so.

    Args:
        table: rows of ``extract_video`` / ``iter_video_rows`` / ``extract`` (needs ``track``, ``time_s``, ``p_*``).
        output_png: where to write; the file appears complete or not at all.
        track: only these track ids; default all, longest first, at most ``max_tracks`` panels.
        max_tracks: panel limit when ``track`` is not given (short tracks are usually passers-by).
        video: only the rows of this video (its ``path`` as in the table, or its file name).

    Returns the path written.

    Example:
        >>> plot_timeline(extract_video(Extractor(), "clip.mp4", fps=2, smoothing=0.8), "timeline.png")  # doctest: +SKIP
    """
    return save_figure(timeline_figure(table, track, max_tracks, video), output_png)


def is_smoothed(table: pd.DataFrame) -> bool:
    """Whether ``table`` has smoothed probability columns (``p_<emotion>_smooth``) to draw over the raw ones."""
    return any(column.startswith("p_") and column.endswith(SMOOTH_SUFFIX) for column in table.columns)


def timeline_figure(table: pd.DataFrame, track: int | Sequence[int] | None = None, max_tracks: int = 6,
                    video: str | None = None) -> Figure:
    """The figure ``plot_timeline`` writes (same arguments), for a notebook to show or a caller to adjust."""
    from matplotlib.figure import Figure  # matplotlib is slow to import; only plotting needs it

    missing = {"track", "time_s"} - set(table.columns)
    emotions = [column for column in table.columns if column.startswith("p_") and not column.endswith(SMOOTH_SUFFIX)]
    if missing or not emotions:
        raise ValueError(
            f"plot_timeline: expected a video table with 'track', 'time_s' and 'p_<emotion>' columns; missing "
            f"{sorted(missing) or ['p_*']}. Make it with deepfever.video.extract_video"
        )
    panels = timeline_panels(table, track, max_tracks, video)
    smoothed = is_smoothed(table)
    has_va = {"valence", "arousal"} <= set(table.columns)
    figure = Figure(figsize=(10, 2.6 * len(panels) + 0.9), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    several = len({path for path, _, _ in panels}) > 1
    # Raw values faint and thin under the smoothed ones when there are both, else raw as the only line.
    raw_style = {"lw": 0.8, "alpha": 0.35} if smoothed else {"lw": 1.4}
    for axis, (path, key, rows) in zip(axes, panels):
        for column in emotions:
            colour = PALETTE.get(column[2:], OTHER_COLOUR)
            axis.plot(rows["time_s"], rows[column], color=colour, label=None if smoothed else column[2:], **raw_style)
            if smoothed and column + SMOOTH_SUFFIX in rows:
                axis.plot(rows["time_s"], rows[column + SMOOTH_SUFFIX], color=colour, lw=1.8, label=column[2:])
        axis.set_ylim(0, 1)
        axis.set_ylabel("probability")
        name = f"{Path(path).name}: " if several else ""
        axis.set_title(f"{name}track {key} ({len(rows)} frames)", loc="left", fontsize=10)
        axis.grid(alpha=0.3)
        if has_va:
            twin = axis.twinx()
            for column, style in (("valence", "--"), ("arousal", ":")):
                twin.plot(rows["time_s"], rows[column], "k" + style, label=None if smoothed else column, **raw_style)
                if smoothed and column + SMOOTH_SUFFIX in rows:
                    twin.plot(rows["time_s"], rows[column + SMOOTH_SUFFIX], "k" + style, lw=1.6, label=column)
            twin.set_ylim(-1, 1)
            twin.set_ylabel("valence / arousal")
            twin.legend(loc="upper right", fontsize=8)
    figure.suptitle(SMOOTHED_NOTE if smoothed else RAW_NOTE, x=0.01, ha="left", fontsize=9, color="0.3")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.08 if has_va else 1.01, 1), fontsize=8, frameon=False)
    axes[-1].set_xlabel("time (s)")
    return figure


def timeline_panels(table: pd.DataFrame, track: int | Sequence[int] | None = None, max_tracks: int = 6,
                    video: str | None = None) -> list[tuple[str, int, pd.DataFrame]]:
    """(video path, track id, its rows by time) for each panel, the longest track first (see ``plot_timeline``)."""
    table = _one_video(table[table["track"].notna()], video)
    videos = table["path"].astype(str) if "path" in table else pd.Series("", index=table.index)
    counts = table.groupby([videos, table["track"].astype(int)]).size()
    order = sorted(counts.index, key=lambda key: (-counts[key], key))
    if track is not None:
        wanted = [track] if isinstance(track, int) else list(track)
        unknown = sorted(set(wanted) - {key[1] for key in order})
        if unknown:
            raise ValueError(f"plot_timeline: no rows for track(s) {unknown}; the table has tracks {sorted({key[1] for key in order})}")
        order = [key for key in order if key[1] in wanted]
    elif len(order) > max_tracks:
        logger.info("plot_timeline: drawing the %d longest of %d tracks", max_tracks, len(order))
        order = order[:max_tracks]
    if not order:
        raise ValueError("plot_timeline: the table has no rows (no face was tracked); nothing to plot")
    return [(path, key, table[(videos == path) & (table["track"] == key)].sort_values("time_s")) for path, key in order]


def _one_video(table: pd.DataFrame, video: str | None) -> pd.DataFrame:
    """The rows of ``video`` (a path as in the table, or a file name), or all rows when it is ``None``."""
    if video is None:
        return table
    paths = table["path"].astype(str)
    chosen = table[(paths == video) | (paths.map(lambda path: Path(path).name) == Path(video).name)]
    if chosen.empty:
        raise ValueError(f"plot_timeline: no rows for video {video!r}; the table has {sorted(paths.unique())[:10]}")
    return chosen
