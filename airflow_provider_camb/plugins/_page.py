"""The HTML of the "CAMB files" view: one row per file, with a player, its name, duration, size and sha256.

Everything shown comes from the task's XCom and is escaped; the page loads nothing but its own files
(``Content-Security-Policy``: media from this origin only, one inline script by nonce). The script fills
in each duration from the player's own metadata, so it is right for every audio format.
"""

from __future__ import annotations

import secrets
from html import escape
from urllib.parse import quote

from airflow_provider_camb.plugins._listing import ListedFile

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 16px; color: #1a202c; }
h1 { font-size: 18px; margin: 0 0 4px; }
p.where { color: #4a5568; margin: 0 0 16px; font-size: 13px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid #e2e8f0; vertical-align: middle; }
th { font-size: 12px; text-transform: uppercase; color: #4a5568; }
td.preview { font-weight: 600; white-space: nowrap; }
td.sha { font-family: ui-monospace, monospace; font-size: 11px; word-break: break-all; max-width: 260px; }
td.name { font-family: ui-monospace, monospace; font-size: 12px; }
audio { width: 300px; }
video { width: 320px; }
"""

_SCRIPT = """
for (const player of document.querySelectorAll("[data-duration-of]")) {
  const cell = document.getElementById(player.dataset.durationOf);
  const show = () => {
    if (Number.isFinite(player.duration)) cell.textContent = player.duration.toFixed(2) + " s";
  };
  player.addEventListener("loadedmetadata", show);
  player.addEventListener("error", () => { cell.textContent = "cannot load"; });
  show();
}
"""


def security_headers(nonce: str) -> dict[str, str]:
    """The headers of the page: it may load media from its own origin and run its one script."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; media-src 'self'; img-src 'self'; script-src 'nonce-{nonce}'; "
            f"style-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def files_page(nonce: str, title: str, files: list[ListedFile], map_index_segment: str, note: str | None = None) -> str:
    """The page; each file's URL is relative to the page's own (``<map index>/<number>/<name>``)."""
    rows = "\n".join(_row(file, map_index_segment) for file in files)
    body = (
        f"<table><thead><tr><th>Preview</th><th>Player</th><th>File</th><th>Duration</th><th>Size</th>"
        f"<th>sha256</th></tr></thead><tbody>\n{rows}\n</tbody></table>"
        if files
        else ""
    )
    message = f"<p>{escape(note)}</p>" if note else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>CAMB files: {escape(title)}</title><style nonce="{nonce}">{_STYLE}</style></head><body>'
        f'<h1>CAMB files</h1><p class="where">{escape(title)}</p>{message}{body}'
        f'<script nonce="{nonce}">{_SCRIPT}</script></body></html>'
    )


def _row(file: ListedFile, map_index_segment: str) -> str:
    src = f"{quote(map_index_segment, safe='')}/{file.number}/{quote(file.name, safe='')}"
    duration_id = f"duration-{file.number}"
    if file.player is None:
        player = f'<a href="{escape(src)}">open</a>'
        duration = "—"
    else:
        preload = "auto" if file.player == "audio" else "metadata"  # a video may be large: its length only
        player = (
            f'<{file.player} controls preload="{preload}" src="{escape(src)}" data-duration-of="{duration_id}" '
            f'data-file="{file.number}"></{file.player}>'
        )
        duration = "…"
    preview = "" if file.preview is None else f"Preview {file.preview}"
    label = preview or escape(file.label)
    return (
        f'<tr><td class="preview">{label}</td><td>{player}</td><td class="name">{escape(file.name)}</td>'
        f'<td id="{duration_id}">{duration}</td><td>{_size(file.bytes)}</td>'
        f'<td class="sha">{escape(file.sha256)}</td></tr>'
    )


def _size(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit} ({size:,} bytes)"
    return f"{size} bytes"
