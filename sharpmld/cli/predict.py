"""``sharpmld predict IMAGE -o DIR``: one image through the worker's own code, no daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpmld.core.config import Config


def predict(
    config: Config,
    image: Path,
    out_dir: Path,
    f_px: float | None = None,
    formats: list[str] | None = None,
) -> dict[str, Any]:
    """Load the model, run one image, write its outputs into ``out_dir``; returns the entry.

    ``formats`` (already checked) replaces the configuration's ``[outputs] formats``.
    """
    from sharpmld.daemon.stems import output_stem
    from sharpmld.protocol import ImageTask, JobRequest
    from sharpmld.worker.model import load_model
    from sharpmld.worker.pipeline import add_previews, decode, infer, write_options, write_outputs

    out_dir.mkdir(parents=True, exist_ok=True)
    task = ImageTask(image.name, str(image.resolve()), output_stem(image.name, set()))
    chosen: dict[str, Any] = {} if formats is None else {"formats": tuple(formats)}
    request = JobRequest.configured(
        config, job_id="predict", job_dir=str(out_dir), images=(task,), f_px=f_px, **chosen
    )
    model = load_model(config.get("model", "factory"), config.checkpoint, config.get("model", "device"))
    decoded = decode(task, out_dir, request)
    if decoded.error is not None or decoded.image is None:
        err = decoded.error
        return {
            "ok": False,
            "error": {
                "code": getattr(err, "code", "internal_error"),
                "message": getattr(err, "message", str(err)),
            },
        }
    ndc = infer(model, decoded.image)
    entry, gaussians, meta = write_outputs(decoded, ndc, out_dir, request.formats, write_options(request))
    if config.get("outputs", "previews"):
        add_previews(entry, gaussians, meta, out_dir, task.stem, int(config.get("outputs", "orbit_frames")))
    return {
        "ok": True,
        "device": str(model.device),
        "load_seconds": model.load_seconds,
        "result": {"source": image.name, "sha256": decoded.sha256, **entry},
    }
