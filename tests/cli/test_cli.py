"""The real ``sharpmld`` command line, run as a subprocess: exit codes, output, effects on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import tomli_w

from sharpmld.cli.codes import RET_CONFIG, RET_FAILURE, RET_NO_DAEMON, RET_NOT_FOUND, RET_OK, RET_USAGE
from sharpmld.core import config
from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import read_ply, to_vertex_records, write_ply
from sharpmld.formats.splat import RECORD_SIZE, splat_bytes
from sharpmld.queue.jobid import new_job_id
from sharpmld.queue.layout import ERROR_JSON, ERROR_TXT, INPUT_DIR, JOB_FILE, STATES
from sharpmld.queue.record import Job, JobRecord
from tests.support import harness

COMMANDS = ("run", "init", "status", "submit", "retry", "convert", "predict", "doctor")


def sh(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m sharpmld ARGS`` (pass ``--root`` yourself); never a traceback, whatever the code."""
    root.parent.mkdir(parents=True, exist_ok=True)
    proc = harness.cli(root, *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def inbox(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "inbox").iterdir())


# --- help -------------------------------------------------------------------------------------


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    proc = sh(tmp_path / "root", "--help")
    assert proc.returncode == RET_OK, proc.stderr
    assert proc.stdout.startswith("usage: sharpmld")
    for command in COMMANDS:
        assert command in proc.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(tmp_path: Path, command: str) -> None:
    proc = sh(tmp_path / "root", command, "--help")
    assert proc.returncode == RET_OK, proc.stderr
    assert proc.stdout.startswith(f"usage: sharpmld {command}")
    assert proc.stderr == ""


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = sh(tmp_path / "root")
    assert proc.returncode == 2
    assert "usage: sharpmld" in proc.stderr


def test_version(tmp_path: Path) -> None:
    proc = sh(tmp_path / "root", "--version")
    assert proc.returncode == RET_OK
    assert proc.stdout.startswith("sharpmld ")


def test_help_and_status_do_not_import_torch_or_numpy(tmp_path: Path) -> None:
    root = tmp_path / "root"
    code = (
        "import sys\n"
        "from sharpmld.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('help', 'torch' in sys.modules, 'numpy' in sys.modules)\n"
        f"code = main(['status', '--root', {str(root)!r}])\n"
        "print('status', code, 'torch' in sys.modules, 'numpy' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=harness.env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "help False False" in lines, proc.stdout
    assert f"status {RET_NO_DAEMON} False False" in lines, proc.stdout  # no daemon on a fresh root


# --- init -------------------------------------------------------------------------------------


def test_init_creates_the_tree_and_a_valid_config(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = sh(root, "init", "--root", str(root))
    assert proc.returncode == RET_OK, proc.stderr
    for name in (*STATES, ".sharpmld"):
        assert (root / name).is_dir(), name
    target = root / config.CONFIG_NAME
    assert target.is_file()
    assert str(root / "inbox") in proc.stdout

    data = tomllib.loads(target.read_text("utf-8"))
    assert Path(data["root"]) == root
    for section, keys in config.DEFAULTS.items():
        assert data[section] == {k: v[0] for k, v in keys.items()}, section
    cfg = config.load(root=root, environ={})
    assert cfg.path == target
    assert cfg.root == root
    assert not [p for p in root.iterdir() if p.name.startswith(".sharpmld-tmp")]


def test_init_twice_fails_unless_forced_or_if_missing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert sh(root, "init", "--root", str(root)).returncode == RET_OK
    target = root / config.CONFIG_NAME
    target.write_text('[log]\nlevel = "debug"\n')

    proc = sh(root, "init", "--root", str(root))
    assert proc.returncode == RET_FAILURE
    assert "already exists" in proc.stderr and "--force" in proc.stderr
    assert target.read_text() == '[log]\nlevel = "debug"\n'

    proc = sh(root, "init", "--root", str(root), "--if-missing")
    assert proc.returncode == RET_OK, proc.stderr
    assert target.read_text() == '[log]\nlevel = "debug"\n'

    proc = sh(root, "init", "--root", str(root), "--force")
    assert proc.returncode == RET_OK, proc.stderr
    data = tomllib.loads(target.read_text())
    assert data["log"]["level"] == "debug", "--force keeps the values in effect"
    assert set(data) == {"root", *config.DEFAULTS}, "--force writes every key"


def test_init_if_missing_on_a_fresh_root_creates_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = sh(root, "init", "--root", str(root), "--if-missing")
    assert proc.returncode == RET_OK, proc.stderr
    assert (root / config.CONFIG_NAME).is_file()


def test_root_from_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "envroot"
    root.parent.mkdir(parents=True, exist_ok=True)
    proc = harness.cli(root, "init", extra_env={"SHARPMLD_ROOT": str(root)})
    assert proc.returncode == RET_OK, proc.stderr
    assert (root / config.CONFIG_NAME).is_file()


# --- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "extra"),
    [("status", ()), ("init", ("--force",)), ("submit", ("SOURCE",)), ("run", ("--burst",))],
)
def test_unknown_key_exits_3_naming_the_key(tmp_path: Path, command: str, extra: tuple[str, ...]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / config.CONFIG_NAME).write_text('[model]\ndevcie = "cpu"\n')
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"x")
    args = [str(source) if a == "SOURCE" else a for a in extra]
    proc = sh(root, command, "--root", str(root), *args)
    assert proc.returncode == RET_CONFIG, (proc.stdout, proc.stderr)
    assert "model.devcie" in proc.stderr
    assert "configuration error" in proc.stderr
    assert not (root / "inbox").exists() or inbox(root) == []


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[limits]\nmax_images = true\n", "limits.max_images"),
        ('[log]\nlevel = "loud"\n', "log.level"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_3_without_traceback(tmp_path: Path, text: str, needle: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / config.CONFIG_NAME).write_text(text)
    proc = sh(root, "status", "--root", str(root))
    assert proc.returncode == RET_CONFIG
    assert needle in proc.stderr
    assert str(root / config.CONFIG_NAME) in proc.stderr


def test_missing_config_flag_exits_3(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = sh(root, "status", "--root", str(root), "--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == RET_CONFIG
    assert "nope.toml" in proc.stderr


# --- status -----------------------------------------------------------------------------------


def test_status_json_on_a_fresh_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = sh(root, "status", "--root", str(root), "--json")
    assert proc.returncode == RET_NO_DAEMON, proc.stderr
    info = json.loads(proc.stdout)
    assert info["counts"] == dict.fromkeys(STATES, 0)
    assert info["daemons"] == []
    assert info["in_flight"] == []
    assert Path(info["root"]) == root


def test_status_counts_what_is_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for state in STATES:
        (root / state).mkdir(parents=True)
    (root / "inbox" / "trip").mkdir()
    (root / "inbox" / "photo.jpg").write_bytes(b"x")
    (root / "inbox" / ".DS_Store").write_bytes(b"x")
    (root / "inbox" / "big.jpg.part").write_bytes(b"x")
    (root / "done" / new_job_id("a")).mkdir()
    (root / "done" / "not-a-job").mkdir()
    (root / "failed" / new_job_id("b")).mkdir()
    proc = sh(root, "status", "--root", str(root), "--json")
    assert proc.returncode == RET_NO_DAEMON, proc.stderr
    assert json.loads(proc.stdout)["counts"] == {"inbox": 2, "working": 0, "done": 1, "failed": 1}

    text = sh(root, "status", "--root", str(root))
    assert text.returncode == RET_NO_DAEMON
    assert "inbox 2  working 0  done 1  failed 1" in text.stdout
    assert "no daemon is running" in text.stdout


# --- submit -----------------------------------------------------------------------------------


def test_submit_folder_and_file_into_the_inbox(tmp_path: Path) -> None:
    root = tmp_path / "root"
    trip = tmp_path / "src" / "trip"
    (trip / "day1").mkdir(parents=True)
    (trip / "a.jpg").write_bytes(b"aaa")
    (trip / "day1" / "b.jpg").write_bytes(b"bbbb")
    photo = tmp_path / "src" / "photo.jpg"
    photo.write_bytes(b"photo-bytes")

    proc = sh(root, "submit", "--root", str(root), "--json", str(trip), str(photo))
    assert proc.returncode == RET_OK, proc.stderr
    placed = [Path(p) for p in json.loads(proc.stdout)["submitted"]]
    assert placed == [root / "inbox" / "trip", root / "inbox" / "photo.jpg"]
    assert inbox(root) == ["photo.jpg", "trip"]
    assert (root / "inbox" / "trip" / "a.jpg").read_bytes() == b"aaa"
    assert (root / "inbox" / "trip" / "day1" / "b.jpg").read_bytes() == b"bbbb"
    assert (root / "inbox" / "photo.jpg").read_bytes() == b"photo-bytes"
    assert trip.is_dir() and photo.is_file(), "submit copies, the source stays"

    # The same names again: nothing is overwritten, the copies get " (2)".
    photo.write_bytes(b"second")
    proc = sh(root, "submit", "--root", str(root), str(trip), str(photo))
    assert proc.returncode == RET_OK, proc.stderr
    assert inbox(root) == ["photo (2).jpg", "photo.jpg", "trip", "trip (2)"]
    assert (root / "inbox" / "photo.jpg").read_bytes() == b"photo-bytes"
    assert (root / "inbox" / "photo (2).jpg").read_bytes() == b"second"
    assert (root / "inbox" / "trip (2)" / "day1" / "b.jpg").read_bytes() == b"bbbb"
    assert f"submitted {root / 'inbox' / 'trip (2)'}" in proc.stdout
    assert not [n for n in inbox(root) if n.startswith(".")], "a dot-temp was left behind"


def test_submit_missing_path_exits_4_and_submits_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"x")
    missing = tmp_path / "nope.jpg"
    proc = sh(root, "submit", "--root", str(root), str(photo), str(missing))
    assert proc.returncode == RET_NOT_FOUND
    assert str(missing) in proc.stderr
    assert not (root / "inbox").exists() or inbox(root) == []


# --- retry ------------------------------------------------------------------------------------


def failed_job(root: Path, name: str, *, is_file: bool) -> Path:
    """A job in failed/ laid out as sharpmld.queue leaves one."""
    job_id = new_job_id(name, is_file=is_file)
    path = root / "failed" / job_id
    (path / INPUT_DIR).mkdir(parents=True)
    if is_file:
        (path / INPUT_DIR / name).write_bytes(b"the photo")
    else:
        (path / INPUT_DIR / "a.jpg").write_bytes(b"aaa")
        (path / INPUT_DIR / "sub").mkdir()
        (path / INPUT_DIR / "sub" / "b.jpg").write_bytes(b"bbb")
    record = JobRecord(job_id, name, "file" if is_file else "folder", attempts=1)
    record.history.append({"attempt": 1, "error": "timeout"})
    Job(path, record).save()
    (path / ERROR_TXT).write_text("Processing took too long.\n")
    (path / ERROR_JSON).write_text('{"code": "timeout"}\n')
    for state in STATES:
        (root / state).mkdir(parents=True, exist_ok=True)
    return path


def test_retry_folder_job_moves_its_input_back(tmp_path: Path) -> None:
    root = tmp_path / "root"
    job = failed_job(root, "Küche 2024", is_file=False)
    assert (job / JOB_FILE).is_file()
    proc = sh(root, "retry", "--root", str(root), "--json", job.name)
    assert proc.returncode == RET_OK, proc.stderr
    back = root / "inbox" / "Küche 2024"
    assert Path(json.loads(proc.stdout)["inbox"]) == back
    assert (back / "a.jpg").read_bytes() == b"aaa"
    assert (back / "sub" / "b.jpg").read_bytes() == b"bbb"
    assert not (back / JOB_FILE).exists() and not (back / ERROR_TXT).exists()
    assert not job.exists()
    assert list((root / "failed").iterdir()) == []


def test_retry_file_job_by_prefix_and_name_collision(tmp_path: Path) -> None:
    root = tmp_path / "root"
    job = failed_job(root, "photo.jpg", is_file=True)
    (root / "inbox" / "photo.jpg").write_bytes(b"someone else's")
    prefix = job.name[: len(job.name) - 2]
    proc = sh(root, "retry", "--root", str(root), prefix)
    assert proc.returncode == RET_OK, proc.stderr
    assert inbox(root) == ["photo (2).jpg", "photo.jpg"]
    assert (root / "inbox" / "photo (2).jpg").read_bytes() == b"the photo"
    assert (root / "inbox" / "photo.jpg").read_bytes() == b"someone else's"
    assert "photo (2).jpg" in proc.stdout
    assert not job.exists()


def test_retry_unknown_or_ambiguous_id_exits_4(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = failed_job(root, "a", is_file=False)
    second = failed_job(root, "b", is_file=False)
    proc = sh(root, "retry", "--root", str(root), "20000101T000000Z-nope-abcd")
    assert proc.returncode == RET_NOT_FOUND
    assert "20000101T000000Z-nope-abcd" in proc.stderr
    proc = sh(root, "retry", "--root", str(root), "2")  # both ids start with the year
    assert proc.returncode == RET_NOT_FOUND
    assert first.exists() and second.exists()
    assert inbox(root) == []


def test_retry_on_a_root_without_failed_folder_exits_4(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = sh(root, "retry", "--root", str(root), "20000101T000000Z-nope-abcd")
    assert proc.returncode == RET_NOT_FOUND


# --- convert ----------------------------------------------------------------------------------


def gaussians(n: int, seed: int = 7) -> Gaussians:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, 4)).astype(np.float32)
    return Gaussians(
        means=rng.uniform(-2, 2, (n, 3)).astype(np.float32),
        scales=rng.uniform(0.001, 0.1, (n, 3)).astype(np.float32),
        quaternions=q / np.linalg.norm(q, axis=1, keepdims=True),
        colors=rng.uniform(0.0, 1.0, (n, 3)).astype(np.float32),
        opacities=rng.uniform(0.05, 0.95, n).astype(np.float32),
    )


@pytest.fixture
def ply_file(tmp_path: Path) -> tuple[Path, Any]:
    records = to_vertex_records(gaussians(57))
    path = tmp_path / "in.ply"
    write_ply(path, records, SceneMeta(f_px=800.0, width=640, height=480))
    return path, records


def test_convert_ply_to_splat(tmp_path: Path, ply_file: tuple[Path, Any]) -> None:
    src, records = ply_file
    out = tmp_path / "out.splat"
    proc = sh(tmp_path / "root", "convert", str(src), str(out))
    assert proc.returncode == RET_OK, proc.stderr
    assert str(out) in proc.stdout
    data = out.read_bytes()
    assert len(data) == RECORD_SIZE * len(records) == 32 * 57
    assert data == bytes(splat_bytes(records))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_convert_ply_to_ply_keeps_the_scene(tmp_path: Path, ply_file: tuple[Path, Any]) -> None:
    src, _ = ply_file
    out = tmp_path / "copy.PLY"
    proc = sh(tmp_path / "root", "convert", str(src), str(out))
    assert proc.returncode == RET_OK, proc.stderr
    assert out.read_bytes() == src.read_bytes()


def test_convert_unsupported_suffix_exits_1(tmp_path: Path, ply_file: tuple[Path, Any]) -> None:
    src, _ = ply_file
    out = tmp_path / "out.obj"
    proc = sh(tmp_path / "root", "convert", str(src), str(out))
    assert proc.returncode == RET_FAILURE
    assert "cannot convert" in proc.stderr
    assert ".obj" in proc.stderr and ".splat" in proc.stderr
    assert not out.exists()


def test_convert_takes_root_and_config_like_every_command(
    tmp_path: Path, ply_file: tuple[Path, Any], checkpoint: Path
) -> None:
    src, records = ply_file
    root = tmp_path / "root"
    cfg_file = harness.write_config(root, checkpoint)
    out = tmp_path / "out.splat"
    proc = sh(root, "convert", "--root", str(root), "--config", str(cfg_file), str(src), str(out))
    assert proc.returncode == RET_OK, proc.stderr
    assert out.read_bytes() == bytes(splat_bytes(records))
    # a --config that is not there is reported like for any other command
    proc = sh(root, "convert", "--config", str(tmp_path / "nope.toml"), str(src), str(out))
    assert proc.returncode == RET_CONFIG, proc.stderr
    assert "nope.toml" in proc.stderr


def test_help_names_every_suffix_convert_writes(tmp_path: Path) -> None:
    from sharpmld.formats.registry import supported_suffixes

    proc = sh(tmp_path / "root", "--help")
    line = next(x for x in proc.stdout.splitlines() if x.strip().startswith("convert"))
    for suffix in supported_suffixes():
        assert suffix in line, line


def test_convert_of_a_non_ply_exits_1_and_missing_source_exits_4(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ply"
    junk.write_text("hello, not a ply\n")
    proc = sh(tmp_path / "root", "convert", str(junk), str(tmp_path / "out.splat"))
    assert proc.returncode == RET_FAILURE
    assert "cannot convert" in proc.stderr
    assert not (tmp_path / "out.splat").exists()

    proc = sh(tmp_path / "root", "convert", str(tmp_path / "nope.ply"), str(tmp_path / "out.splat"))
    assert proc.returncode == RET_NOT_FOUND
    assert "nope.ply" in proc.stderr


# --- predict (loads torch: a few seconds each) ------------------------------------------------


def write_png(path: Path, width: int = 64, height: int = 48) -> None:
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(path)


def test_predict_writes_ply_and_splat(tmp_path: Path, root: Path) -> None:
    image = tmp_path / "my photo.png"
    write_png(image)
    out = tmp_path / "out"
    proc = sh(root, "predict", str(image), "-o", str(out), "--root", str(root), "--json")
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["ok"] is True
    assert result["result"]["source"] == "my photo.png"
    n = result["result"]["gaussians"]
    assert n > 0
    ply, splat_file = out / "my_photo.ply", out / "my_photo.splat"
    assert ply.is_file() and splat_file.is_file(), sorted(p.name for p in out.iterdir())
    assert splat_file.stat().st_size == RECORD_SIZE * n
    scene, meta = read_ply(ply)
    assert len(scene) == n
    assert meta is None  # the default, vertex-only layout: the camera is in the result instead
    assert (result["result"]["width"], result["result"]["height"]) == (64, 48)


def predicted(out: Path) -> list[str]:
    return sorted(p.suffix for p in out.iterdir() if p.suffix in (".ply", ".splat", ".spz", ".glb"))


def test_predict_writes_the_formats_of_the_configuration(tmp_path: Path, checkpoint: Path) -> None:
    root = tmp_path / "root"
    harness.write_config(root, checkpoint, outputs={"formats": ["spz", "glb"], "previews": False})
    image = tmp_path / "photo.png"
    write_png(image)
    out = tmp_path / "out"
    proc = sh(root, "predict", str(image), "-o", str(out), "--root", str(root), "--json")
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    assert predicted(out) == [".glb", ".spz"]


def test_predict_formats_flag_overrides_the_configuration(tmp_path: Path, root: Path) -> None:
    image = tmp_path / "photo.png"
    write_png(image)
    out = tmp_path / "out"
    proc = sh(root, "predict", str(image), "-o", str(out), "--root", str(root), "--formats", "glb, ply,glb")
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    assert predicted(out) == [".glb", ".ply"]


@pytest.mark.parametrize(("value", "named"), [("ply,obj", "'obj'"), ("", "(none)")])
def test_predict_rejects_formats_the_configuration_would_reject(
    tmp_path: Path, root: Path, value: str, named: str
) -> None:
    image = tmp_path / "photo.png"
    write_png(image)
    out = tmp_path / "out"
    proc = sh(root, "predict", str(image), "-o", str(out), "--root", str(root), "--formats", value)
    assert proc.returncode == RET_USAGE, proc.stdout + proc.stderr
    assert "--formats" in proc.stderr and named in proc.stderr
    assert "ply, splat, spz, glb" in proc.stderr
    assert not out.exists()


def test_predict_on_a_non_image_exits_1_with_a_code(tmp_path: Path, root: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("these are my notes, not a photo\n" * 10)
    out = tmp_path / "out"
    proc = sh(root, "predict", str(fake), "-o", str(out), "--root", str(root), "--json")
    assert proc.returncode == RET_FAILURE, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] is False
    assert result["error"]["code"] in ("unsupported_type", "decode_failed")
    assert not list(out.glob("*.ply")) and not list(out.glob("*.splat"))


def test_predict_missing_image_exits_4(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = sh(root, "predict", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"), "--root", str(root))
    assert proc.returncode == RET_NOT_FOUND
    assert "nope.png" in proc.stderr


# --- doctor (runs a torch probe: a few seconds each) ------------------------------------------


def test_doctor_all_ok_with_the_tiny_model(root: Path) -> None:
    proc = sh(root, "doctor", "--root", str(root))
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in ("configuration", "folders", "worker python", "torch", "model code", "checkpoint"):
        assert any(line.startswith(f"[ok] {name}:") for line in lines), (name, proc.stdout)
    assert "FAIL" not in proc.stdout
    assert "everything needed is in place" in proc.stdout
    (cap,) = [line for line in lines if line.startswith("[ok] worker memory cap:")]
    ram_gb = psutil.virtual_memory().total / (1 << 30)
    assert cap == (
        f"[ok] worker memory cap: {0.6 * ram_gb:.3g} GB (0.6 × {ram_gb:.3g} GB RAM; "
        "set [worker] max_memory_mb to change)"
    ), proc.stdout


def test_doctor_missing_checkpoint_says_how_to_download_it(tmp_path: Path, root: Path) -> None:
    missing = tmp_path / "weights" / "sharp.pt"
    harness.write_config(root, missing)
    proc = sh(root, "doctor", "--root", str(root))
    assert proc.returncode == RET_FAILURE, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line for line in lines if line.startswith("[FAIL]")] == [
        f"[FAIL] checkpoint: {missing} does not exist"
    ], proc.stdout
    failed = lines.index(f"[FAIL] checkpoint: {missing} does not exist")
    fix = lines[failed + 1].strip()
    assert fix.startswith("fix: curl "), proc.stdout
    assert str(missing) in fix and "http" in fix
    assert "[ok] model code:" in proc.stdout
    assert lines[-1] == "problems found"


def test_doctor_reports_a_bad_config_as_a_failed_check(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / config.CONFIG_NAME).write_text(tomli_w.dumps({"model": {"devcie": "cpu"}}))
    proc = sh(root, "doctor", "--root", str(root))
    assert proc.returncode == RET_FAILURE
    assert "[FAIL] configuration:" in proc.stdout
    assert "model.devcie" in proc.stdout


def test_convert_vertex_only_ply_to_glb_takes_the_camera_from_flags(
    tmp_path: Path, ply_file: tuple[Path, Any]
) -> None:
    from sharpmld.formats.gltf import write_glb

    src, records = ply_file  # the default layout: no camera in the file
    out = tmp_path / "out.glb"
    proc = sh(tmp_path / "root", "convert", "--f-px", "800", "--size", "640x480", str(src), str(out))
    assert proc.returncode == RET_OK, proc.stderr
    direct = tmp_path / "direct.glb"
    write_glb(direct, records, SceneMeta(f_px=800.0, width=640, height=480))
    assert out.read_bytes() == direct.read_bytes()
    proc = sh(tmp_path / "root", "convert", "--f-px", "800", str(src), str(out))
    assert proc.returncode != RET_OK and "--size" in proc.stderr


def test_convert_writes_the_layout_and_version_asked_for(tmp_path: Path, ply_file: tuple[Path, Any]) -> None:
    import gzip

    src, _ = ply_file
    out = tmp_path / "sharp.ply"
    proc = sh(tmp_path / "root", "convert", "--ply-layout", "ml-sharp", str(src), str(out))
    assert proc.returncode == RET_FAILURE and "--f-px" in proc.stderr and not out.exists()
    args = ("--ply-layout", "ml-sharp", "--f-px", "800", "--size", "640x480")
    proc = sh(tmp_path / "root", "convert", *args, str(src), str(out))
    assert proc.returncode == RET_OK, proc.stderr
    assert read_ply(out)[1] == SceneMeta(f_px=800.0, width=640, height=480)
    spz = tmp_path / "out.spz"
    proc = sh(tmp_path / "root", "convert", "--spz-version", "3", str(src), str(spz))
    assert proc.returncode == RET_OK, proc.stderr
    assert gzip.decompress(spz.read_bytes())[4:8] == (3).to_bytes(4, "little")
    proc = sh(tmp_path / "root", "convert", str(src), str(spz))
    assert gzip.decompress(spz.read_bytes())[4:8] == (2).to_bytes(4, "little")
