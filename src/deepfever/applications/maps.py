"""Pictures of the expression space: a 2-D map of faces, and grids of face thumbnails.

Thumbnails are cut from the source images by each row's box, so a table alone is enough; when a
source has moved (or was an array or a video), its points are still drawn, only without a face.
"""
from __future__ import annotations

import html
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfever.faces.thumbnails import row_thumbnail
from deepfever.io.annotate import PALETTE
from deepfever.io.figures import save_figure

logger = logging.getLogger(__name__)

PROJECTIONS = ("auto", "umap", "tsne", "pca")
TSNE_LIMIT = 5000  # t-SNE on more points takes minutes on a laptop CPU; PCA is instant
THUMBNAIL = 64


def project_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """(N, 2) coordinates and the method used: UMAP if installed, else t-SNE up to ``TSNE_LIMIT`` points, else PCA."""
    vectors = np.asarray(vectors, np.float32)
    if method not in PROJECTIONS:
        raise ValueError(f"project_2d: unknown method {method!r}; valid choices are {', '.join(PROJECTIONS)}")
    if vectors.ndim != 2 or len(vectors) < 3:
        raise ValueError(f"project_2d: expected an (N, D) array with at least 3 rows, got shape {vectors.shape}")
    if method == "auto":
        method = "umap" if _umap_available() else "tsne" if len(vectors) <= TSNE_LIMIT else "pca"
    started = time.perf_counter()
    if method != "pca":  # the slow ones: say what is running before it runs (tens of seconds on a few thousand points)
        logger.info("projecting %d vectors to 2-D with %s (seconds to a minute on a CPU)...", len(vectors), method)
    coordinates = _fit_2d(vectors, method, seed)
    logger.info("projected %d vectors with %s in %.1f s", len(vectors), method, time.perf_counter() - started)
    return coordinates, method


def _fit_2d(vectors: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "umap":
        if not _umap_available():
            raise ValueError("project_2d: method 'umap' needs the umap-learn package; pip install umap-learn, or use 'tsne'/'pca'")
        import umap

        # A seeded UMAP runs on one thread whatever n_jobs says, and warns unless told so: say it.
        return umap.UMAP(n_components=2, metric="cosine", random_state=seed, n_jobs=1).fit_transform(vectors)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (len(vectors) - 1) / 3)
        return TSNE(2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed).fit_transform(vectors)
    from sklearn.decomposition import PCA

    return PCA(2, random_state=seed).fit_transform(vectors)


def _umap_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def label_colours(labels: pd.Series) -> dict[str, str]:
    """A stable hex colour for each distinct label (sorted): an emotion's colour of ``io.annotate.PALETTE``,
    the same as in timelines, annotated media and the web page; other labels take matplotlib's tab10/tab20."""
    from matplotlib import colormaps, colors

    names = sorted(labels.astype(str).unique())
    others = [name for name in names if name not in PALETTE]
    palette = colormaps["tab10" if len(others) <= 10 else "tab20"]
    return {name: PALETTE[name] if name in PALETTE else colors.to_hex(palette(others.index(name) % palette.N)) for name in names}


def plot_map(table: pd.DataFrame, output: str | os.PathLike, color_by: str = "emotion", html_output: str | os.PathLike | None = None,
             method: str = "auto", max_thumbnails: int = 300, overwrite: bool = False, seed: int = 0) -> dict[str, Any]:
    """Draw every face of ``table`` on a 2-D map of its expression vectors; returns what was drawn.

    Example:
        >>> plot_map(read_table("faces.parquet"), "map.png", html_output="map.html")  # doctest: +SKIP
        {'points': 250, 'method': 'tsne', 'thumbnails': 250, 'missing_sources': 0, ...}
    """
    from deepfever.io.atomic import refuse_overwrite

    for target in (output, html_output):
        if target is not None:
            refuse_overwrite(target, overwrite)
    if "embedding" not in table:
        raise ValueError("plot_map: expected a table with an 'embedding' column, as written by 'deepfever extract'")
    if color_by not in table:
        raise ValueError(f"plot_map: no column {color_by!r} to colour by; the table has {', '.join(map(str, table.columns))}")
    table = table.reset_index(drop=True)
    coords, used = project_2d(np.stack(table["embedding"].to_list()), method, seed)
    labels = table[color_by].astype(str)
    colours = label_colours(labels)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(table), min(max_thumbnails, len(table)), replace=False)) if max_thumbnails > 0 else []
    images: dict[str, np.ndarray | None] = {}
    thumbnails = {int(i): row_thumbnail(table.iloc[i], THUMBNAIL, images) for i in chosen}
    drawn = {i: thumb for i, thumb in thumbnails.items() if thumb is not None}
    missing = sorted(path for path, image in images.items() if image is None)
    if missing:
        logger.warning("plot_map: %d source image(s) could not be read (e.g. %s); their points have no thumbnail", len(missing), missing[0])
    title = f"{len(table)} faces, {used.upper()} of expression vectors, coloured by {color_by}"
    _write_png(coords, labels, colours, drawn, output, title)
    if html_output is not None:
        write_html_map(coords, table, labels, colours, drawn, html_output, title)
    return {"points": len(table), "method": used, "thumbnails": len(drawn), "missing_sources": len(missing),
            "color_by": color_by, "output": str(output), "html": str(html_output) if html_output else None}


def _write_png(coords: np.ndarray, labels: pd.Series, colours: dict[str, str], thumbnails: dict[int, np.ndarray],
               output: str | os.PathLike, title: str) -> None:
    from matplotlib.figure import Figure
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    figure = Figure(figsize=(11, 9), layout="tight")
    axis = figure.subplots()
    for name, colour in colours.items():
        chosen = (labels == name).to_numpy()
        axis.scatter(coords[chosen, 0], coords[chosen, 1], s=12, color=colour, label=f"{name} ({chosen.sum()})", alpha=0.8)
    zoom = 0.45 if len(thumbnails) > 60 else 0.7
    for index, thumb in thumbnails.items():
        box = AnnotationBbox(OffsetImage(thumb, zoom=zoom), coords[index], frameon=True, pad=0.1,
                             bboxprops={"edgecolor": colours[labels.iloc[index]], "linewidth": 1.5})
        axis.add_artist(box)
    axis.legend(loc="best", fontsize=8, markerscale=1.5)
    axis.set(title=title, xticks=[], yticks=[])
    save_figure(figure, output, dpi=110)


def write_html_map(coords: np.ndarray, table: pd.DataFrame, labels: pd.Series, colours: dict[str, str],
                   thumbnails: dict[int, np.ndarray], output: str | os.PathLike, title: str) -> Path:
    """A standalone HTML page (inline SVG and script, nothing fetched) whose points show path, face and label on hover."""
    from deepfever.io.atomic import atomic_write

    width, height, pad = 900, 700, 20
    low, high = coords.min(0), coords.max(0)
    span = np.where(high - low > 0, high - low, 1.0)
    xy = pad + (coords - low) / span * np.array([width - 2 * pad, height - 2 * pad])
    emotions = table["emotion"].astype(str) if "emotion" in table else labels
    circles = []
    for index, ((x, y), label) in enumerate(zip(xy, labels)):
        tip = html.escape(f"{table['path'].iloc[index]} | face {table['face'].iloc[index] if 'face' in table else 0} | {emotions.iloc[index]}")
        circles.append(f'<circle cx="{x:.1f}" cy="{height - y:.1f}" r="4" fill="{colours[label]}" data-i="{index}">'
                       f"<title>{tip}</title></circle>")
    records = [{"path": str(table["path"].iloc[i]), "face": int(table["face"].iloc[i]) if "face" in table else 0,
                "emotion": emotions.iloc[i], "label": labels.iloc[i]} for i in range(len(table))]
    images = {str(i): _data_uri(thumb) for i, thumb in thumbnails.items()}
    data = json.dumps({"rows": records, "thumbs": images}).replace("</", "<\\/")  # keep the script element closed
    legend = "".join(f'<span><i style="background:{c}"></i>{html.escape(n)}</span>' for n, c in colours.items())
    page = _HTML.format(title=html.escape(title), legend=legend, width=width, height=height, circles="\n".join(circles), data=data)
    with atomic_write(output) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return Path(output)


def _data_uri(thumb: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(thumb).save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
#legend span {{ margin-right: 14px; font-size: 13px; }}
#legend i {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 5px; }}
#tip {{ position: fixed; display: none; background: #fff; border: 1px solid #888; padding: 6px; font-size: 12px; pointer-events: none; }}
#tip img {{ display: block; width: 96px; height: 96px; margin-bottom: 4px; }}
circle:hover {{ stroke: #000; stroke-width: 2; }}
</style></head><body>
<h3>{title}</h3><div id="legend">{legend}</div>
<svg id="map" width="{width}" height="{height}" viewBox="0 0 {width} {height}" style="border:1px solid #ddd">
{circles}
</svg>
<div id="tip"></div>
<script>
const DATA = {data};
const tip = document.getElementById("tip");
document.getElementById("map").addEventListener("mousemove", (event) => {{
  const i = event.target.dataset ? event.target.dataset.i : undefined;
  if (i === undefined) {{ tip.style.display = "none"; return; }}
  const row = DATA.rows[i];
  tip.replaceChildren();
  if (DATA.thumbs[i]) {{ const img = document.createElement("img"); img.src = DATA.thumbs[i]; tip.appendChild(img); }}
  for (const line of [row.path, "face " + row.face, "emotion: " + row.emotion, "colour: " + row.label]) {{
    const div = document.createElement("div"); div.textContent = line; tip.appendChild(div);
  }}
  tip.style.left = (event.clientX + 14) + "px"; tip.style.top = (event.clientY + 14) + "px"; tip.style.display = "block";
}});
</script></body></html>
"""


def thumbnail_grid(query: np.ndarray | None, results: pd.DataFrame, output: str | os.PathLike, columns: int = 6,
                   size: int = 96) -> Path:
    """A PNG of the query face followed by each result's face with its rank, similarity and emotion."""
    from PIL import Image, ImageDraw

    from deepfever.io.atomic import atomic_write

    images: dict[str, np.ndarray | None] = {}
    tiles = [(query, "query", "")]
    for _, row in results.iterrows():
        tiles.append((row_thumbnail(row, size, images), f"#{row['rank']}  {row['similarity']:.3f}", str(row.get("emotion", ""))))
    _warn_unseen_sources(images, output)
    caption = 28
    rows = -(-len(tiles) // columns)
    canvas = Image.new("RGB", (columns * (size + 8), rows * (size + caption + 8)), "white")
    draw = ImageDraw.Draw(canvas)
    for position, (thumb, line1, line2) in enumerate(tiles):
        left, top = (position % columns) * (size + 8) + 4, (position // columns) * (size + caption + 8) + 4
        if thumb is None:
            draw.rectangle([left, top, left + size - 1, top + size - 1], fill=(200, 200, 200))
            draw.text((left + 6, top + size // 2 - 6), "source missing", fill="black")
        else:
            # Centred in its square cell: a thumbnail keeps its face's aspect.
            tile = Image.fromarray(np.asarray(thumb, np.uint8)).convert("RGB")
            tile.thumbnail((size, size), Image.BILINEAR)
            canvas.paste(tile, (left + (size - tile.width) // 2, top + (size - tile.height) // 2))
        draw.text((left, top + size + 2), line1, fill="black")
        draw.text((left, top + size + 14), line2, fill=(80, 80, 80))
    with atomic_write(output) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(output)


def _warn_unseen_sources(images: dict[str, np.ndarray | None], output: str | os.PathLike) -> None:
    """Name the source images a grid drew as grey tiles, so a table read from elsewhere does not fail quietly."""
    unseen = [path for path, image in images.items() if image is None]
    missing = [path for path in unseen if not os.path.isfile(path)]
    unreadable = [path for path in unseen if path not in missing]
    for paths, what in ((missing, "missing"), (unreadable, "unreadable")):
        if paths:
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            logger.warning("%s: %d source image(s) %s, drawn as grey 'source missing' tiles: %s (paths are read as "
                           "written in the index; relative ones from %s)", output, len(paths), what, shown, os.getcwd())
