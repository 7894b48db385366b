"""The Queue and Job pages, rendered on the server from the same dicts the JSON API returns.

Job and photo names come from strangers, so every piece of data goes through ``html.escape``
(text and attributes alike) and every URL part through ``quote``; nothing here trusts a name.
The pages work without JavaScript; ``static/queue.js`` only keeps the queue table fresh.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from sharpmld.queue.layout import INPUT_DIR, JOB_FILE, LEASE_FILE, PROGRESS_FILE

PREVIEW_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg", ".webp")
# Files of a job folder that are sharpmld's bookkeeping rather than something to download.
_BOOKKEEPING = frozenset({JOB_FILE, LEASE_FILE, PROGRESS_FILE})


def _t(value: object) -> str:
    return escape(str(value), quote=True)


def _files_url(path: str) -> str:
    return "/files/" + "/".join(quote(p, safe="") for p in path.split("/"))


def job_url(job_id: str) -> str:
    """The job page's address; the id may be an inbox name a stranger chose."""
    return "/jobs/" + quote(job_id, safe="")


def duration(job: dict[str, Any]) -> str:
    """The run time from result.json, or empty while the job has none."""
    seconds = (job.get("result") or {}).get("duration_seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def error_text(job: dict[str, Any]) -> str:
    """The failure in a person's words, with the stable code after it."""
    error = job.get("error") or {}
    message, code = error.get("message"), error.get("code")
    if message and code:
        return f"{message} ({code})"
    return str(message or code or "")


def _page(title: str, body: list[str], *, script: bool = False) -> str:
    js = '<script type="module" src="/static/queue.js"></script>\n' if script else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_t(title)} — sharpmld</title>\n"
        '<link rel="stylesheet" href="/static/app.css">\n'
        f"{js}</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _row(job: dict[str, Any]) -> str:
    state = str(job.get("state", ""))
    action = ""
    if state == "failed":
        action = f'<button class="retry" data-id="{_t(job["id"])}">Retry</button>'
    cells = [
        f'<td><a href="{_t(job_url(str(job["id"])))}">{_t(job.get("name", job["id"]))}</a></td>',
        f"<td>{_t(job.get('photos', ''))}</td>",
        f'<td class="state {_t(state)}">{_t(state)}</td>',
        f"<td>{_t(duration(job))}</td>",
        f'<td class="error">{_t(error_text(job))}</td>',
        f"<td>{action}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def render_queue(jobs: list[dict[str, Any]]) -> str:
    """The Queue page: every job, newest facts on each load, refreshed by queue.js."""
    body = [
        "<h1>sharpmld queue</h1>",
        '<p id="notice" class="meta" role="status"></p>',
        '<table id="jobs"><thead><tr><th>Name</th><th>Photos</th><th>State</th>'
        "<th>Duration</th><th>Error</th><th></th></tr></thead>",
        "<tbody>" + "".join(_row(j) for j in jobs) + "</tbody></table>",
    ]
    if not jobs:
        body.append('<p class="meta">No jobs yet: drop a folder of photos into the inbox.</p>')
    return _page("Queue", body, script=True)


def _outputs(files: list[str], prefix: str) -> list[str]:
    """The files worth downloading: everything but the originals and the bookkeeping."""
    return [
        f
        for f in files
        if not f.startswith(f"{prefix}/{INPUT_DIR}/") and f.rsplit("/", 1)[-1] not in _BOOKKEEPING
    ]


def _result_facts(result: dict[str, Any]) -> list[str]:
    images = [i for i in result.get("images") or [] if isinstance(i, dict)]
    rejected = [r for r in result.get("rejected") or [] if isinstance(r, dict)]
    out = [f"<h2>Photos used ({len(images)})</h2>"]
    if images:
        out.append("<ul>" + "".join(f"<li>{_t(i.get('source', ''))}</li>" for i in images) + "</ul>")
    out.append(f"<h2>Photos not used ({len(rejected)})</h2>")
    if rejected:
        items = "".join(
            f"<li><strong>{_t(r.get('source', ''))}</strong>: {_t(r.get('message', ''))} "
            f'<span class="code">{_t(r.get("code", ""))}</span></li>'
            for r in rejected
        )
        out.append(f"<ul>{items}</ul>")
    return out


def render_job(job: dict[str, Any]) -> str:
    """The Job page: previews, downloads, result.json facts and the error of a failed job."""
    name = str(job.get("name", job["id"]))
    state = str(job.get("state", ""))
    prefix = f"{state}/{job['id']}"
    files = [str(f) for f in job.get("files") or []]
    meta = [state, f"{job.get('photos', 0)} photos", duration(job)]
    body = [
        '<p><a href="/">← Queue</a></p>',
        f"<h1>{_t(name)}</h1>",
        f'<p class="meta">{" · ".join(_t(m) for m in meta if m)}</p>',
    ]
    if state == "failed":
        body.append(f'<p class="error">{_t(error_text(job)) or "failed"}</p>')
    previews = [f for f in files if "/previews/" in f and f.lower().endswith(PREVIEW_SUFFIXES)]
    if previews:
        body.append('<div class="grid">')
        for f in previews:
            label = _t(f.rsplit("/", 1)[-1])
            body.append(f'<figure><img src="{_t(_files_url(f))}" alt="{label}" loading="lazy">')
            body.append(f"<figcaption>{label}</figcaption></figure>")
        body.append("</div>")
    outputs = _outputs(files, prefix)
    body.append("<h2>Downloads</h2>")
    if outputs:
        links = "".join(
            f'<li><a href="{_t(_files_url(f))}" download>{_t(f[len(prefix) + 1 :])}</a></li>' for f in outputs
        )
        body.append(f"<ul>{links}</ul>")
    else:
        body.append('<p class="meta">No output files yet.</p>')
    result = job.get("result")
    if isinstance(result, dict):
        body += _result_facts(result)
    return _page(name, body)
