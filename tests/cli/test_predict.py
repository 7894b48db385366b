"""``sharpmld predict`` runs the model in the daemon's worker process, never in its own."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from sharpmld.cli.codes import RET_FAILURE, RET_OK
from sharpmld.core import config
from sharpmld.daemon.stems import output_stem
from sharpmld.protocol import ImageTask, JobRequest
from tests.cli.test_cli import sh, write_png
from tests.support import harness

CLI_WITHOUT_TORCH = """
import json, sys
from sharpmld.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "torch": "torch" in sys.modules,
                  "worker": sorted(m for m in sys.modules if m.startswith("sharpmld.worker"))}),
      file=sys.stderr)
"""


def shim_python(tmp_path: Path) -> tuple[Path, Path]:
    """An interpreter of its own for the worker: records its argv and environment, then runs
    the real Python, as a venv's ``bin/python`` would."""
    record = tmp_path / "shim-record"
    shim = tmp_path / "venv" / "bin" / "python"
    shim.parent.mkdir(parents=True)
    shim.write_text(
        f'#!/bin/sh\nenv > "{record}.env"\necho "$@" > "{record}.argv"\nexec "{sys.executable}" "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return shim, record


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_predict_uses_the_configured_worker_python_with_the_mps_fallback_set(
    tmp_path: Path, checkpoint: Path
) -> None:
    shim, record = shim_python(tmp_path)
    root = tmp_path / "root"
    harness.write_config(root, checkpoint, worker={"python": str(shim)}, model={"device": "auto"})
    image = tmp_path / "photo.png"
    write_png(image)
    out = tmp_path / "out"
    proc = sh(root, "predict", str(image), "-o", str(out), "--root", str(root), "--json")
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
    assert "sharpmld.worker.main" in (record.parent / f"{record.name}.argv").read_text()
    env = read_env(record.parent / f"{record.name}.env")
    assert env.get("PYTORCH_ENABLE_MPS_FALLBACK") == "1"  # before the worker's Python started
    assert (out / "photo.ply").is_file()


def test_predict_with_a_worker_python_that_does_not_exist_says_so(tmp_path: Path, checkpoint: Path) -> None:
    root = tmp_path / "root"
    missing = tmp_path / "no-venv" / "bin" / "python"
    harness.write_config(root, checkpoint, worker={"python": str(missing)})
    image = tmp_path / "photo.png"
    write_png(image)
    proc = sh(root, "predict", str(image), "-o", str(tmp_path / "out"), "--root", str(root))
    assert proc.returncode == RET_FAILURE, proc.stdout + proc.stderr
    assert f"cannot start the worker with {missing}" in proc.stderr


def test_the_cli_process_never_imports_torch_or_the_worker(tmp_path: Path, root: Path) -> None:
    image = tmp_path / "photo.png"
    write_png(image)
    args = ["predict", str(image), "-o", str(tmp_path / "out"), "--root", str(root), "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", CLI_WITHOUT_TORCH, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=harness.env(),
        cwd=tmp_path,
    )
    seen: dict[str, Any] = json.loads(proc.stderr.strip().splitlines()[-1])
    assert seen == {"code": RET_OK, "torch": False, "worker": []}, proc.stderr


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def reference_outputs(cfg: config.Config, image: Path, out: Path) -> dict[str, bytes]:
    """What predict wrote before it used the worker: the worker's functions in this process."""
    from sharpmld.worker.model import load_model
    from sharpmld.worker.pipeline import add_previews, decode, infer, write_options, write_outputs

    out.mkdir()
    task = ImageTask(image.name, str(image.resolve()), output_stem(image.name, set()))
    request = JobRequest.configured(cfg, job_id="predict", job_dir=str(out), images=(task,))
    model = load_model(cfg.get("model", "factory"), cfg.checkpoint, cfg.get("model", "device"))
    decoded = decode(task, out, request)
    assert decoded.image is not None
    entry, gaussians, meta = write_outputs(
        decoded, infer(model, decoded.image), out, request.formats, write_options(request)
    )
    if cfg.get("outputs", "previews"):
        add_previews(entry, gaussians, meta, out, task.stem, int(cfg.get("outputs", "orbit_frames")))
    return files(out)


def test_predict_writes_the_same_bytes_as_the_in_process_path(tmp_path: Path, checkpoint: Path) -> None:
    root = tmp_path / "root"
    harness.write_config(root, checkpoint, outputs={"formats": ["ply", "splat", "spz", "glb"]})
    image = tmp_path / "my photo.png"
    write_png(image)
    out = tmp_path / "out"
    proc = sh(root, "predict", str(image), "-o", str(out), "--root", str(root), "--json")
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    expected = reference_outputs(config.load(root=root), image, tmp_path / "reference")
    written = files(out)
    assert sorted(written) == sorted(expected)
    assert {k for k, v in written.items() if v != expected[k]} == set()


def test_predict_on_a_bad_image_says_why_in_words_and_exits_1(tmp_path: Path, root: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("these are my notes, not a photo\n" * 10)
    proc = sh(root, "predict", str(fake), "-o", str(tmp_path / "out"), "--root", str(root))
    assert proc.returncode == RET_FAILURE, proc.stdout + proc.stderr
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("sharpmld: ") and last.endswith(("(unsupported_type)", "(decode_failed)")), last


def test_predict_answers_on_stdout_and_reports_progress_on_stderr(tmp_path: Path, root: Path) -> None:
    image = tmp_path / "photo.png"
    write_png(image)
    proc = sh(root, "predict", str(image), "-o", str(tmp_path / "out"), "--root", str(root), "--json")
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["result"]["source"] == "photo.png"
    assert "model loaded on cpu" in proc.stderr


def test_a_worker_that_dies_gives_the_daemons_engine_crash_error(tmp_path: Path, checkpoint: Path) -> None:
    dying = tmp_path / "venv" / "bin" / "python"
    dying.parent.mkdir(parents=True)
    dying.write_text("#!/bin/sh\nexit 9\n")
    dying.chmod(dying.stat().st_mode | stat.S_IXUSR)
    root = tmp_path / "root"
    harness.write_config(root, checkpoint, worker={"python": str(dying)})
    image = tmp_path / "photo.png"
    write_png(image)
    proc = sh(root, "predict", str(image), "-o", str(tmp_path / "out"), "--root", str(root), "--json")
    assert proc.returncode == RET_FAILURE, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "engine_crash"
    assert "exit" in error["message"] and "9" in error["message"], error
