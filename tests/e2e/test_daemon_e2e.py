"""The real daemon, as a subprocess, on a temp root: folders in, splats or reasons out."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

pytestmark = pytest.mark.timeout(180)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo(path: Path, seed: int, size: tuple[int, int] = (320, 240), fmt: str = "jpeg") -> Path:
    rng = np.random.default_rng(seed)
    rgb = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    if fmt == "png":
        return corpus.write_png(path, rgb)
    if fmt == "heic":
        return corpus.write_heic(path, rgb)
    return corpus.write_jpeg(path, rgb, exif=corpus.make_exif(focal_35mm=26, gps=True))


def finder_copy(src: Path, dst: Path, pause: float = 0.15) -> None:
    """Like Finder: the folder appears first, then each file grows chunk by chunk."""
    dst.mkdir()
    for f in sorted(src.iterdir()):
        data = f.read_bytes()
        with open(dst / f.name, "wb") as out:
            for i in range(0, len(data), max(1, len(data) // 3)):
                out.write(data[i : i + max(1, len(data) // 3)])
                out.flush()
                time.sleep(pause)


def rsync_copy(src: Path, dst: Path, pause: float = 0.15) -> None:
    """Like rsync: each file is written under a `.name.XXXXXX` temp name, then renamed."""
    dst.mkdir()
    for i, f in enumerate(sorted(src.iterdir())):
        tmp = dst / f".{f.name}.a{i}B9xZ"
        data = f.read_bytes()
        with open(tmp, "wb") as out:
            out.write(data[: len(data) // 2])
            out.flush()
            time.sleep(pause)
            out.write(data[len(data) // 2 :])
        time.sleep(pause)
        os.rename(tmp, dst / f.name)


def originals(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_jobs_end_in_done_or_failed(root: Path, tmp_path: Path, daemons: list[Daemon]) -> None:
    src = tmp_path / "src"
    kitchen = src / "kitchen"
    kitchen.mkdir(parents=True)
    for i in range(3):
        photo(kitchen / f"IMG_{i}.jpg", i)
    garden = src / "garden"
    garden.mkdir()
    photo(garden / "a.png", 10, fmt="png")
    photo(garden / "b.heic", 11, fmt="heic")
    corpus.write_truncated_jpeg(garden / "broken.jpg")
    notes = src / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a photo")
    loose = photo(src / "loose.jpg", 20)

    d = Daemon(root)
    daemons.append(d)
    d.wait_logged("engine ready")
    inbox = root / "inbox"
    finder_copy(kitchen, inbox / "kitchen")
    rsync_copy(garden, inbox / "garden")
    shutil.copytree(notes, inbox / "notes")
    shutil.copy(loose, inbox / "loose.jpg")

    wait_for(
        lambda: len(jobs(root, "done")) + len(jobs(root, "failed")) == 4,
        90,
        f"4 finished jobs\n{d.text()[-4000:]}",
    )
    assert d.stop() == 0
    assert not any((root / "inbox").iterdir())
    assert not any((root / "working").iterdir())

    done = {json.loads((p / "result.json").read_text())["original_name"]: p for p in jobs(root, "done")}
    failed = {json.loads((p / "error.json").read_text())["original_name"]: p for p in jobs(root, "failed")}
    assert sorted(done) == ["garden", "kitchen", "loose.jpg"]
    assert sorted(failed) == ["notes"]

    # The originals survive byte for byte, whatever happened.
    assert originals(done["kitchen"] / "input") == originals(kitchen)
    assert originals(done["garden"] / "input") == originals(garden)
    assert originals(done["loose.jpg"] / "input") == {"loose.jpg": sha(loose)}
    assert originals(failed["notes"] / "input") == originals(notes)

    for name, count in (("kitchen", 3), ("garden", 2), ("loose.jpg", 1)):
        job = done[name]
        result = json.loads((job / "result.json").read_text())
        assert result["status"] == "done"
        assert result["job_id"] == job.name
        assert result["attempts"] == 1
        assert result["engine"]["device"] == "cpu"
        assert len(result["engine"]["checkpoint_sha256"]) == 64
        assert len(result["images"]) == count
        for image in result["images"]:
            n = image["gaussians"]
            assert n == 32 * 32
            ply = job / image["outputs"]["ply"]["path"]
            splat = job / image["outputs"]["splat"]["path"]
            assert image["outputs"]["ply"]["sha256"] == sha(ply)
            assert image["outputs"]["splat"]["bytes"] == splat.stat().st_size == 32 * n
            vertex = PlyData.read(str(ply))["vertex"]
            assert vertex.count == n
            assert np.isfinite(np.stack([vertex[p] for p in ("x", "y", "z", "opacity")])).all()
            assert image["sha256"] == sha(job / "input" / image["source"])
            assert set(image["timings"]) >= {"decode", "inference", "postprocess", "write_ply", "write_splat"}
            preview = job / image["outputs"]["preview"]["path"]
            assert preview.read_bytes().startswith(b"\x89PNG")
        page = (job / "index.html").read_text()
        assert all(i["outputs"]["ply"]["path"] in page for i in result["images"])
        lines = [json.loads(x) for x in (job / "job.log").read_text().splitlines()]
        assert lines and all(x["job_id"] == job.name for x in lines)

    garden_result = json.loads((done["garden"] / "result.json").read_text())
    assert [(r["source"], r["code"]) for r in garden_result["rejected"]] == [("broken.jpg", "decode_failed")]

    error = json.loads((failed["notes"] / "error.json").read_text())
    assert error["code"] == "no_valid_images"
    text = (failed["notes"] / "ERROR.txt").read_text()
    assert "Please upload JPEG, PNG, or HEIC images" in text
    assert "readme.txt" in text and error["job_id"] in text


def test_gps_does_not_survive_into_outputs(root: Path, daemons: list[Daemon]) -> None:
    job = root / "inbox" / "trip"
    job.mkdir(parents=True)
    photo(job / "gps.jpg", 1)
    assert corpus.GPS_MARKER in (job / "gps.jpg").read_bytes()
    d = Daemon(root, "--burst")
    daemons.append(d)
    assert d.wait() == 0, d.text()
    (done,) = jobs(root, "done")
    for path in done.rglob("*"):
        if path.is_file() and "input" not in path.relative_to(done).parts:
            assert corpus.GPS_MARKER not in path.read_bytes(), path


def test_bad_job_toml_fails_with_its_code(root: Path, daemons: list[Daemon]) -> None:
    job = root / "inbox" / "odd"
    job.mkdir(parents=True)
    photo(job / "x.jpg", 3)
    (job / "job.toml").write_text("priority = 'high'\n")
    d = Daemon(root, "--burst")
    daemons.append(d)
    assert d.wait() == 0, d.text()
    (failed,) = jobs(root, "failed")
    assert json.loads((failed / "error.json").read_text())["code"] == "invalid_job_toml"
    assert "priority" in (failed / "ERROR.txt").read_text()


def test_priority_then_age_orders_claims(root: Path, daemons: list[Daemon]) -> None:
    inbox = root / "inbox"
    for i, (name, prio) in enumerate((("first", None), ("second", None), ("urgent", 5))):
        folder = inbox / name
        folder.mkdir(parents=True)
        photo(folder / "p.jpg", i)
        if prio is not None:
            (folder / "job.toml").write_text(f"priority = {prio}\n")
        stamp = time.time() - 100 + i
        os.utime(folder, (stamp, stamp))
    d = Daemon(root, "--burst")
    daemons.append(d)
    assert d.wait() == 0, d.text()
    claimed = [line["original_name"] for line in d.logged("job claimed")]
    assert claimed == ["urgent", "first", "second"]


def test_daemon_process_never_imports_torch(root: Path, daemons: list[Daemon]) -> None:
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc to inspect the daemon's mapped libraries")
    folder = root / "inbox" / "one"
    folder.mkdir(parents=True)
    photo(folder / "p.jpg", 1)
    d = Daemon(root)
    daemons.append(d)
    wait_for(lambda: jobs(root, "done"), 90, "the job to finish")
    daemon_maps = Path(f"/proc/{d.proc.pid}/maps").read_text()
    worker = d.worker_pid()
    worker_maps = Path(f"/proc/{worker}/maps").read_text()
    assert "libtorch" in worker_maps  # the check can see torch where it is loaded
    assert "libtorch" not in daemon_maps
    assert d.stop() == 0


def test_engine_unavailable_keeps_jobs_waiting(
    tmp_path: Path, checkpoint: Path, daemons: list[Daemon]
) -> None:
    root = tmp_path / "root"
    missing = tmp_path / "later.pt"
    harness.write_config(root, missing)
    folder = root / "inbox" / "waiting"
    folder.mkdir(parents=True)
    photo(folder / "p.jpg", 1)
    d = Daemon(root)
    daemons.append(d)
    (line,) = d.wait_logged("engine unavailable; jobs wait in the inbox")
    assert str(missing) in line["reason"] and "curl" in line["reason"]
    # Each retry rewrites the status file; wait for three of them: still one message, still waiting.
    updates: set[float] = set()

    def retried() -> bool:
        updates.add((d.status() or {}).get("updated", 0.0))
        return len(updates - {0.0}) >= 4

    wait_for(retried, 30, lambda: f"three engine retries\n{d.text()[-2000:]}", interval=0.02)
    assert len(d.logged("engine unavailable; jobs wait in the inbox")) == 1
    assert (root / "inbox" / "waiting").is_dir() and not jobs(root, "failed")
    assert d.proc.poll() is None

    doctor = harness.cli(root, "doctor", "--root", str(root))
    assert doctor.returncode == 1
    assert "checkpoint" in doctor.stdout and "curl" in doctor.stdout

    shutil.copy(checkpoint, missing)
    wait_for(lambda: jobs(root, "done"), 60, f"the job once the engine is back\n{d.text()[-3000:]}")
    assert d.stop() == 0


@pytest.mark.parametrize("observer", ["native", "polling"])
def test_ready_marker_releases_a_folder_seen_by_the_observer(
    root: Path, checkpoint: Path, daemons: list[Daemon], observer: str
) -> None:
    """For network shares: a marker says when a copy is whole, and the polling observer (no
    filesystem events) notices both the folder and the marker.

    Periodic rescans are an hour apart and settling takes a minute, so within the deadlines
    below only the observer can trigger the scans and only the marker can release the folder.
    """
    settle = 60.0
    harness.write_config(
        root,
        checkpoint,
        intake={
            "observer": observer,
            "ready_marker": "READY",
            "settle_seconds": settle,
            "scan_interval_seconds": 3600.0,
        },
    )
    d = Daemon(root)
    daemons.append(d)
    d.wait_logged("engine ready")
    port = d.metrics_port()
    job = root / "inbox" / "share"
    job.mkdir()
    photo(job / "a.jpg", 5)
    # The observer noticed the folder and a scan holds it back: seen, settling, not claimed.
    wait_for(
        lambda: harness.metric(harness.scrape(port), "sharpmld_queue_jobs", state="settling") == 1,
        20,
        lambda: f"the {observer} observer to report the folder settling\n{d.text()[-2000:]}",
    )
    assert not d.logged("job claimed")
    assert (root / "inbox" / "share").is_dir()
    marked = time.monotonic()
    (job / "READY").write_text("")
    d.wait_logged("job claimed", timeout=20)
    assert time.monotonic() - marked < settle / 2, "claimed by settling, not by the marker"
    wait_for(lambda: jobs(root, "done"), 60, lambda: d.text()[-2000:])
    (done,) = jobs(root, "done")
    result = json.loads((done / "result.json").read_text())
    assert [i["source"] for i in result["images"]] == ["a.jpg"]
    assert result["rejected"] == []  # the marker is not reported as a bad file
    assert d.stop() == 0


def test_job_toml_chooses_every_format(root: Path, daemons: list[Daemon]) -> None:
    job = root / "inbox" / "all-formats"
    job.mkdir(parents=True)
    photo(job / "p.jpg", 9)
    (job / "job.toml").write_text('formats = ["ply", "splat", "spz", "glb"]\n')
    d = Daemon(root, "--burst")
    daemons.append(d)
    assert d.wait() == 0, d.text()
    (done,) = jobs(root, "done")
    (image,) = json.loads((done / "result.json").read_text())["images"]
    assert sorted(image["outputs"]) == ["glb", "image", "ply", "preview", "splat", "spz"]
    from sharpmld.formats.registry import FORMATS

    for name in ("ply", "splat", "spz", "glb"):
        read_back = FORMATS[name].read(done / image["outputs"][name]["path"])
        assert len(read_back) == image["gaussians"]
    # The defaults that open in the most viewers: a vertex-only .ply and an SPZ version 2.
    ply = (done / image["outputs"]["ply"]["path"]).read_bytes()
    assert ply.split(b"end_header\n")[0].count(b"element ") == 1
    spz = gzip.decompress((done / image["outputs"]["spz"]["path"]).read_bytes())
    assert spz[4:8] == (2).to_bytes(4, "little")
