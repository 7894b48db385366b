"""Names on the broker: one stream of photos in two priority bands, one message per photo.

A photo's message id is ``<job id>/<photo>``: JetStream drops a second publish with the same
``Nats-Msg-Id`` inside the stream's duplicate window, so an intake that crashed between
publishing and recording that it published can simply publish again.
"""

from __future__ import annotations

STREAM = "SHARPMLD_PHOTOS"
SUBJECT_PREFIX = "sharpmld.jobs"
BANDS = ("high", "normal")  # workers ask the high band first
HIGH_PRIORITY = 1  # a job.toml priority at or above this goes to the high band
CONSUMERS = {band: f"sharpmld-workers-{band}" for band in BANDS}
# A worker that won a photo's commit says so here (plain NATS, not kept): a hint that lets the
# intake's finisher look at once instead of at its next poll. The COMMIT file still decides.
COMMITS_SUBJECT = "sharpmld.commits"


def subject(band: str) -> str:
    """The subject photos of ``band`` are published on."""
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}; known: {', '.join(BANDS)}")
    return f"{SUBJECT_PREFIX}.{band}"


def band_for(priority: int) -> str:
    """The band a job of ``priority`` (job.toml, higher first) is published in."""
    return "high" if priority >= HIGH_PRIORITY else "normal"


def message_id(job_id: str, photo: str) -> str:
    """The id that makes a re-publish of the same photo a duplicate the broker drops."""
    return f"{job_id}/{photo}"
