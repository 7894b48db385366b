"""The ``/upload`` page: server-rendered, the limits written in, the sending done by upload.js.

It works offline (nothing from a CDN) and on a phone: ``accept="image/*"`` makes a phone's
picker offer the photo library and the camera, and the second input's ``capture`` goes to
the camera at once. What the server answers (a refusal's message) is shown as text, never
as HTML: it can hold a stranger's file name.
"""

from __future__ import annotations

from html import escape

from sharpmld.core.units import MB
from sharpmld.web.upload_receiver import UploadLimits

STYLE = """
body { font: 16px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 40rem; padding: 1rem; }
#drop { border: 2px dashed #888; border-radius: 8px; padding: 2rem 1rem; text-align: center; }
#drop.over { background: #eef5ff; border-color: #36c; }
.pick { display: inline-block; margin: .4rem; }
progress { width: 100%; }
#error { color: #a00; font-weight: 600; }
#files { max-height: 12rem; overflow: auto; font-size: 90%; }
"""


def _mb(n: int) -> str:
    return f"{n / MB:g}"


def render_upload(limits: UploadLimits) -> str:
    """The whole page; the limits appear both for the person and as data for the script."""
    video = (
        f" Videos (MP4, MOV) up to {_mb(limits.max_video_bytes)} MB are taken too."
        if limits.max_video_bytes
        else ""
    )
    facts = (
        f"JPEG, PNG or HEIC photos, up to {_mb(limits.max_file_bytes)} MB each, "
        f"{limits.max_images} photos and {_mb(limits.max_job_bytes)} MB in one job.{video}"
    )
    accept = "image/*,video/mp4,video/quicktime" if limits.max_video_bytes else "image/*"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Upload photos — sharpmld</title>
<style>{STYLE}</style>
</head>
<body>
<nav><a href="/">Queue</a></nav>
<h1>Upload photos</h1>
<p id="limits">{escape(facts)}</p>
<form id="upload" action="/api/jobs" method="post" enctype="multipart/form-data">
  <div id="drop">
    <p>Drop photos or a folder here, or</p>
    <label class="pick">Choose photos
      <input id="photos" type="file" name="file" accept="{accept}" multiple></label>
    <label class="pick">Choose a folder
      <input id="folder" type="file" name="file" webkitdirectory multiple></label>
    <label class="pick">Take a photo
      <input id="camera" type="file" name="file" accept="image/*" capture="environment"></label>
  </div>
  <p><label>Job name (optional) <input id="name" name="name" type="text" maxlength="200"></label></p>
  <ul id="files"></ul>
  <p><button id="send" type="submit" disabled>Upload</button></p>
  <progress id="progress" max="1" value="0" hidden></progress>
  <p id="status" role="status"></p>
  <p id="error" role="alert"></p>
</form>
<script type="module" src="/static/upload.js"></script>
</body>
</html>
"""
