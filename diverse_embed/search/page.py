"""Search results as one self-contained HTML page: for each query and hit a player that starts at
the matched second, a waveform picture, the score and the path. Audio and pictures are embedded
(FLAC and SVG), and the page's Content-Security-Policy forbids loading anything from elsewhere."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import time

import numpy as np
import soundfile as sf

from .. import files
from ..audio import SAMPLE_RATE, AudioLoadError, load_excerpt
from .index import Hit

EXCERPT_SECONDS = 10.0  # heard per hit, from its matched second (a whole-clip hit: from the start)
CONTEXT_SECONDS = 2.0  # of audio before the matched second, in the picture and a click back in the player

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
section { margin-bottom: 32px; }
table { border-collapse: collapse; }
td { padding: 4px 10px 4px 0; vertical-align: middle; }
.path { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
.score { font-variant-numeric: tabular-nums; }
svg { background: #f4f6f8; }
.error { color: #a00; }
"""
# Each player records what the browser made of its audio (a test reads it from the DOM).
SCRIPT = """
const noteDuration = a => {
  if (a.readyState < 1 || a.dataset.duration) return;
  a.currentTime = parseFloat(a.dataset.start);  // the matched second
  a.dataset.duration = a.duration.toFixed(2);
};
for (const a of document.querySelectorAll("audio")) {
  noteDuration(a);  // it may have loaded before this script ran
  a.addEventListener("loadedmetadata", () => noteDuration(a));
  a.addEventListener("error", () => { a.dataset.error = "cannot decode"; });
}
"""
# Only the page's own script runs (by its hash): a name that slipped past escaping could not run one.
POLICY = (
    "default-src 'none'; media-src data:; img-src data:; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()}'"
)


def audio_data_uri(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(waveform, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
    return "data:audio/flac;base64," + base64.b64encode(buffer.getvalue()).decode()


def waveform_svg(
    waveform: np.ndarray,
    marked: tuple[float, float] | None,
    sample_rate: int = SAMPLE_RATE,
    width: int = 300,
    height: int = 44,
) -> str:
    """An envelope picture (min and max per column), with the `marked` (start, end) seconds shaded."""
    columns = np.array_split(waveform, width) if len(waveform) >= width else [waveform]
    peak = max(float(np.max(np.abs(waveform))) if len(waveform) else 0.0, 1e-6)
    top = [height / 2 * (1 - float(c.max()) / peak) if len(c) else height / 2 for c in columns]
    bottom = [height / 2 * (1 - float(c.min()) / peak) if len(c) else height / 2 for c in columns]
    step = width / max(1, len(columns))
    points = [f"{i * step:.1f},{y:.1f}" for i, y in enumerate(top)]
    points += [f"{i * step:.1f},{y:.1f}" for i, y in reversed(list(enumerate(bottom)))]
    mark = ""
    if marked and len(waveform):
        x0, x1 = (min(1.0, t * sample_rate / len(waveform)) * width for t in marked)
        mark = f'<rect x="{x0:.1f}" y="0" width="{x1 - x0:.1f}" height="{height}" fill="#ffb000" fill-opacity="0.55"/>'
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="waveform">'
        f'<polygon points="{" ".join(points)}" fill="#3b6ea8"/>{mark}</svg>'
    )


def player(path: str, start: float | None, end: float | None) -> str:
    """A player and its picture of `path` around the matched seconds (start, end), starting at
    `start`; for a whole clip (None) its first EXCERPT_SECONDS. Or the reason it cannot be read."""
    begin = 0.0 if start is None else max(0.0, start - CONTEXT_SECONDS)
    offset = 0.0 if start is None else start - begin  # where the player starts, within the excerpt
    try:
        excerpt = load_excerpt(path, begin, offset + EXCERPT_SECONDS)
    except AudioLoadError as err:
        return f'<td colspan="2" class="error">cannot play: {html.escape(err.reason)}</td>'
    marked = None if start is None else (offset, offset + (end - start))
    return (
        f'<td><audio controls preload="metadata" data-start="{offset:.3f}" src="{audio_data_uri(excerpt)}"></audio></td>'
        f"<td>{waveform_svg(excerpt, marked)}</td>"
    )


def where_in_file(start: float, end: float) -> str:
    """A segment hit's seconds in the file, and where they fall on the player's clock, which counts
    from the excerpt's start (CONTEXT_SECONDS earlier), not the file's."""
    offset = start - max(0.0, start - CONTEXT_SECONDS)
    return (
        f"{start:.1f}-{end:.1f} s<br><small>on the player's clock {int(offset // 60)}:{int(offset % 60):02d}: "
        f"it plays from {start - offset:.1f} s of the file</small>"
    )


def search_page(results: list[tuple[str, list[Hit] | str]], model_name: str) -> str:
    """results: (query path, its hits, or the reason the query could not be read) in order."""
    sections = []
    for query, hits in results:
        rows = [
            f'<tr><td>query</td>{player(query, None, None)}<td></td><td class="path">{html.escape(query)}</td></tr>'
        ]
        if isinstance(hits, str):
            rows.append(f'<tr><td colspan="5" class="error">{html.escape(hits)}</td></tr>')
        else:
            for hit in hits:
                where = "whole clip" if hit.start is None else where_in_file(hit.start, hit.end)
                rows.append(
                    f"<tr><td>{hit.rank}</td>{player(hit.path, hit.start, hit.end)}"
                    f'<td class="score">{hit.score:.3f}<br>{where}</td>'
                    f'<td class="path">{html.escape(hit.path)}</td></tr>'
                )
        sections.append(
            f"<section><h2>{html.escape(os.path.basename(query))}</h2><table>{''.join(rows)}</table></section>"
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        f"<title>diverse-embed search</title><style>{STYLE}</style></head><body>"
        f"<h1>Search results</h1><p>{len(results)} quer{'y' if len(results) == 1 else 'ies'}, model "
        f"{html.escape(model_name)}, {time.strftime('%Y-%m-%d %H:%M')}. A segment hit's player starts at the "
        f"matched second (shaded in its picture, with {CONTEXT_SECONDS:.0f} s before it) and plays on for up "
        f"to {EXCERPT_SECONDS:.0f} s; a whole-clip hit plays from the start.</p>"
        f"{''.join(sections)}<script>{SCRIPT}</script></body></html>"
    )


def write_search_page(path: str | os.PathLike, results: list[tuple[str, list[Hit] | str]], model_name: str) -> None:
    page = search_page(results, model_name).encode("utf-8", "backslashreplace")  # a name that is not UTF-8, escaped
    files.atomic_write(path, lambda f: f.write(page))
