"""Configuration: one table of defaults, one loader, one validation pass.

The file is TOML (read with ``tomllib``, written with ``tomli-w``). Every key has a default, so
no file at all is a valid configuration. Unknown keys and wrong types are refused at start with
the key's dotted name and a one-line fix, never a traceback.

Where the root and the file come from, first match wins:
  root:   ``--root`` > ``$SHARPMLD_ROOT`` > ``root`` in the file > ``~/SharpML``
  file:   ``--config`` > ``$SHARPMLD_CONFIG`` > ``<root>/sharpmld.toml`` when it exists
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharpmld.core.errors import ConfigError

CONFIG_NAME = "sharpmld.toml"
DEFAULT_ROOT = "~/SharpML"
DEFAULT_CHECKPOINT = "~/.cache/torch/hub/checkpoints/sharp_2572gikvuh.pt"
CHECKPOINT_URL = "https://ml-site.cdn-apple.com/models/sharp/sharp_2572gikvuh.pt"
SHARP_INSTALL = 'pip install "git+https://github.com/apple/ml-sharp.git"'
# The output formats a job may ask for; `sharpmld.formats.registry` implements each.
KNOWN_FORMATS = ("ply", "splat", "spz", "glb")

# (section, key) -> (default, allowed types, help). ``None`` defaults are spelled "" in TOML.
DEFAULTS: dict[str, dict[str, tuple[Any, tuple[type, ...], str]]] = {
    "model": {
        "checkpoint": (DEFAULT_CHECKPOINT, (str,), "path to the SHARP .pt checkpoint"),
        "factory": ("sharp", (str,), '"sharp", or "package.module:function" returning a module'),
        "device": ("auto", (str,), "auto | mps | cuda | cpu"),
        "precision": (
            "fp32",
            (str,),
            "fp32 (as ml-sharp) | fp16 | bf16: half-precision weights and activations use less "
            "memory; the geometry stays fp32",
        ),
        "colour": (
            "srgb",
            (str,),
            "srgb: convert photos with an embedded colour profile (Display P3, Adobe RGB) to "
            "sRGB first | as-is: use the pixels unconverted, as ml-sharp does",
        ),
    },
    "worker": {
        "python": ("", (str,), "python that runs the worker; empty means the daemon's own"),
        "image_timeout_seconds": (
            "auto",
            (int, float, str),
            "kill the worker past this per image; auto: 300 on a GPU, 1800 on the CPU",
        ),
        "job_timeout_seconds": (
            "auto",
            (int, float, str),
            "kill the worker past this per job; auto: 3600 on a GPU, 43200 on the CPU",
        ),
        "start_timeout_seconds": (600.0, (int, float), "how long the model may take to load"),
        "engine_retry_seconds": (60.0, (int, float), "retry an unavailable engine this often"),
        "max_images_per_worker": (0, (int,), "restart the worker after this many images; 0 never"),
        "max_memory_mb": (
            "auto",
            (int, float, str),
            '"auto" (0.6 x physical RAM) or MB; kill the worker above this memory footprint; 0 off',
        ),
        "max_file_size_mb": (4096, (int,), "largest file the worker may write; 0 unlimited"),
        "max_open_files": (1024, (int,), "open-file limit of the worker; 0 inherits"),
        "max_cpu_seconds": (0, (int,), "CPU-time limit of the worker process; 0 unlimited"),
        "max_address_space_mb": (0, (int,), "address-space limit (Linux only); 0 unlimited"),
        "user": ("", (str,), "run the worker as this user (only when the daemon runs as root)"),
        "sandbox": (False, (bool,), "run the worker without network access"),
    },
    "intake": {
        "settle_seconds": (2.0, (int, float), "an entry must be unchanged this long"),
        "in_progress_seconds": (
            120.0,
            (int, float),
            "an entry holding a .part/.crdownload/rsync temp file waits this long unchanged "
            "(at least 10 x settle_seconds)",
        ),
        "ready_marker": ("", (str,), 'if set (e.g. ".ready"), claim only folders holding it'),
        "scan_interval_seconds": (5.0, (int, float), "full inbox rescan period"),
        "observer": ("native", (str,), "native (filesystem events) | polling (network shares)"),
        "min_free_mb": (2000.0, (int, float), "stop claiming while the root's volume has less free"),
        "disk_full_retry_seconds": (60.0, (int, float), "after a job hit a full disk, wait this long"),
    },
    "limits": {
        "max_file_mb": (20.0, (int, float), "largest accepted image file"),
        "max_job_mb": (500.0, (int, float), "largest accepted job"),
        "max_images": (100, (int,), "most images in one job"),
        "max_pixels_side": (8000, (int,), "largest accepted width or height"),
        "max_entries": (10000, (int,), "most files and folders in one job"),
        "max_depth": (8, (int,), "deepest nesting in one job"),
    },
    "queue": {
        "max_attempts": (3, (int,), "fail a job after the worker crashed on it this many times"),
        "max_daemon_restarts": (10, (int,), "fail a job after the daemon died this many times on it"),
        "shutdown_grace_seconds": (30.0, (int, float), "time to finish the job in flight"),
        "lease_timeout_seconds": (120.0, (int, float), "another host's job is orphaned after this"),
        "heartbeat_seconds": (10.0, (int, float), "how often a running job's lease is refreshed"),
    },
    "outputs": {
        "formats": (["ply", "splat"], (list,), "formats written per image (job.toml: formats)"),
        "previews": (True, (bool,), "render previews/<photo>.png from the input camera"),
        "orbit_frames": (0, (int,), "frames of previews/<photo>.orbit.gif, a camera sway; 0 none"),
        "ply_layout": (
            "3dgs",
            (str,),
            '"3dgs" (vertex only, opens in every 3DGS viewer) | "ml-sharp" (adds its camera metadata)',
        ),
        "spz_version": (2, (int,), "2 (opens in the most viewers) | 3 (finer rotations)"),
    },
    "video": {
        "enabled": (True, (bool,), "accept MP4 and MOV videos and use their sharpest frames"),
        "frames": (8, (int,), "frames kept per video (job.toml: video_frames)"),
        "max_seconds": (300.0, (int, float), "longest accepted video"),
        "max_mb": (500.0, (int, float), "largest accepted video file"),
    },
    "cache": {
        "enabled": (True, (bool,), "reuse the outputs of an image seen before with the same settings"),
    },
    "retention": {
        "done_days": (30.0, (int, float), "remove finished jobs after this many days; 0 keeps"),
        "failed_days": (90.0, (int, float), "remove failed jobs after this many days; 0 keeps"),
    },
    "metrics": {
        "enabled": (True, (bool,), "serve Prometheus metrics"),
        "host": ("127.0.0.1", (str,), "address to serve metrics on (loopback by default)"),
        "port": (9464, (int,), "port for /metrics; 0 picks a free one"),
        "disk_interval_seconds": (30.0, (int, float), "how often folder sizes are recomputed"),
    },
    "notify": {
        "on_done": ([], (list,), "command (argument list) to run when a job is done"),
        "on_failed": ([], (list,), "command (argument list) to run when a job failed"),
        "command_timeout_seconds": (60.0, (int, float), "kill a hook command after this"),
        "webhook_url": ("", (str,), "POST a JSON summary of each finished job here"),
        "webhook_timeout_seconds": (10.0, (int, float), "timeout of one webhook request"),
        "webhook_attempts": (3, (int,), "webhook tries before giving up"),
        "desktop": (False, (bool,), "macOS: show a notification when a job ends"),
    },
    "web": {
        "host": (
            "127.0.0.1",
            (str,),
            "address `sharpmld serve` binds (another than loopback needs the token)",
        ),
        "port": (8642, (int,), "port of `sharpmld serve`"),
    },
    "cluster": {
        "url": (
            "",
            (str,),
            "NATS JetStream server, e.g. nats://studio.local:4222; empty: single-host mode",
        ),
        "ack_wait_seconds": (60, (int, float), "seconds a worker may hold a photo between heartbeats"),
        "max_deliver": (5, (int,), "deliveries before a photo that keeps killing workers is given up"),
    },
    "log": {
        "level": ("info", (str,), "debug | info | warning | error"),
        "format": ("auto", (str,), "auto (pretty on a terminal) | json | console"),
    },
}

CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("model", "device"): ("auto", "mps", "cuda", "cpu"),
    # The dtypes `sharpmld.worker.model` can run the network in.
    ("model", "precision"): ("fp32", "fp16", "bf16"),
    # What `sharpmld.worker.colour` does with an embedded colour profile.
    ("model", "colour"): ("srgb", "as-is"),
    ("intake", "observer"): ("native", "polling"),
    ("log", "level"): ("debug", "info", "warning", "error"),
    ("log", "format"): ("auto", "json", "console"),
    # The layouts `sharpmld.formats.ply` writes.
    ("outputs", "ply_layout"): ("3dgs", "ml-sharp"),
}
# Time limits whose "auto" depends on the device the worker reports: (on a GPU, on the CPU).
# The real SHARP network takes about a second a photo on a GPU and 3 to over 5 minutes on a
# 2-core CPU, so one limit cannot fit both.
DEVICE_DEFAULTS: dict[tuple[str, str], tuple[float, float]] = {
    ("worker", "image_timeout_seconds"): (300.0, 1800.0),
    ("worker", "job_timeout_seconds"): (3600.0, 43200.0),
}

# The SPZ versions `sharpmld.formats.spz` writes.
SPZ_VERSIONS = (2, 3)

POSITIVE = {
    ("worker", "image_timeout_seconds"),
    ("worker", "job_timeout_seconds"),
    ("worker", "start_timeout_seconds"),
    ("worker", "engine_retry_seconds"),
    ("intake", "scan_interval_seconds"),
    ("limits", "max_file_mb"),
    ("limits", "max_job_mb"),
    ("limits", "max_images"),
    ("limits", "max_pixels_side"),
    ("limits", "max_entries"),
    ("limits", "max_depth"),
    ("queue", "max_attempts"),
    ("queue", "max_daemon_restarts"),
    ("queue", "lease_timeout_seconds"),
    ("queue", "heartbeat_seconds"),
    ("metrics", "disk_interval_seconds"),
    ("video", "frames"),
    ("video", "max_seconds"),
    ("video", "max_mb"),
    ("notify", "command_timeout_seconds"),
    ("notify", "webhook_timeout_seconds"),
    ("notify", "webhook_attempts"),
    ("cluster", "ack_wait_seconds"),
    ("cluster", "max_deliver"),
}


@dataclass(frozen=True)
class Config:
    """The validated configuration; sections are plain dicts keyed as in the file."""

    root: Path
    path: Path | None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        """One value, falling back to the default table."""
        return self.sections.get(section, {}).get(key, DEFAULTS[section][key][0])

    def seconds_for_device(self, section: str, key: str, device: str) -> float:
        """A time limit with "auto" resolved for ``device`` as the worker reports it ("cpu",
        "mps", "cuda"…); an unknown device gets the CPU's longer limit."""
        value = self.get(section, key)
        if value != "auto":
            return float(value)
        gpu, cpu = DEVICE_DEFAULTS[(section, key)]
        return gpu if device and not device.startswith("cpu") else cpu

    @property
    def checkpoint(self) -> Path:
        """The checkpoint path, ``~`` expanded; relative paths are relative to the root."""
        return _resolve(self.get("model", "checkpoint"), self.root)

    @property
    def worker_python(self) -> str | None:
        """The worker's interpreter, or None for the daemon's own."""
        value: str = self.get("worker", "python")
        return str(_resolve(value, self.root)) if value else None

    def with_value(self, section: str, key: str, value: Any, source: str) -> Config:
        """This configuration with one key set from the command line, validated like the file."""
        merged = {name: dict(keys) for name, keys in self.sections.items()}
        merged.setdefault(section, {})[key] = value
        return Config(self.root, self.path, validate(merged, source))

    def as_toml_dict(self) -> dict[str, Any]:
        """Every key with its effective value, as written by ``sharpmld init``."""
        out: dict[str, Any] = {"root": str(self.root)}
        for section, keys in DEFAULTS.items():
            out[section] = {key: self.get(section, key) for key in keys}
        return out


def _resolve(value: str, root: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else root / path


def validate(data: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Check ``data`` against the default table; raise ConfigError naming the first bad key."""
    sections: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if section == "root":
            if not isinstance(values, str):
                raise ConfigError(f"{source}: 'root' must be a string path, e.g. root = \"~/SharpML\"")
            continue
        if section not in DEFAULTS:
            known = ", ".join(["root", *DEFAULTS])
            raise ConfigError(f"{source}: unknown section or key '{section}'. Known: {known}.")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: '{section}' must be a table, e.g. [{section}]")
        checked: dict[str, Any] = {}
        for key, value in values.items():
            checked[key] = _check_value(section, key, value, source)
        sections[section] = checked
    _check_relations(sections, source)
    return sections


def _check_relations(sections: dict[str, dict[str, Any]], source: str) -> None:
    """Keys that are only valid together: the lease must outlive a heartbeat gap and a drain.

    Another host adopts a job whose heartbeat is older than the lease timeout, so a heartbeat
    that is not well inside it (a third leaves room for two missed beats), or a stop grace
    that outlasts it, lets a live daemon's job be taken over and processed twice.
    """
    queue = sections.get("queue", {})

    def value(key: str) -> float:
        return float(queue.get(key, DEFAULTS["queue"][key][0]))

    lease = value("lease_timeout_seconds")
    if value("heartbeat_seconds") >= lease / 3:
        raise ConfigError(
            f"{source}: 'queue.heartbeat_seconds' ({value('heartbeat_seconds'):g}) must be less than "
            f"a third of 'queue.lease_timeout_seconds' ({lease:g}); lower the first or raise the second"
        )
    if value("shutdown_grace_seconds") >= lease:
        raise ConfigError(
            f"{source}: 'queue.shutdown_grace_seconds' ({value('shutdown_grace_seconds'):g}) must be "
            f"less than 'queue.lease_timeout_seconds' ({lease:g}); lower the first or raise the second"
        )


def _check_value(section: str, key: str, value: Any, source: str) -> Any:
    name = f"{section}.{key}"
    if key not in DEFAULTS[section]:
        known = ", ".join(DEFAULTS[section])
        raise ConfigError(f"{source}: unknown key '{name}'. Keys of [{section}]: {known}.")
    default, types, help_text = DEFAULTS[section][key]
    if not _type_ok(value, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise ConfigError(
            f"{source}: '{name}' must be {wanted} ({help_text}), got {value!r}; "
            f"for example {key} = {_toml_literal(default)}"
        )
    if (section, key) in DEVICE_DEFAULTS and isinstance(value, str):
        if value != "auto":
            raise ConfigError(
                f"{source}: '{name}' must be a number of seconds or \"auto\" ({help_text}), "
                f"got {value!r}; for example {key} = {_toml_literal(default)}"
            )
        return value
    choices = CHOICES.get((section, key))
    if choices and value not in choices:
        raise ConfigError(f"{source}: '{name}' must be one of {', '.join(choices)}; got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        # nan compares false with everything: without this it passes every range check below.
        raise ConfigError(f"{source}: '{name}' must be a finite number ({help_text}); got {value!r}")
    if (section, key) in POSITIVE and value <= 0:
        raise ConfigError(f"{source}: '{name}' must be greater than 0; got {value!r}")
    if isinstance(value, int | float) and value < 0:
        raise ConfigError(f"{source}: '{name}' must be 0 or more; got {value!r}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise ConfigError(
            f'{source}: \'{name}\' must be a list of strings, e.g. {key} = ["/usr/bin/say", "done"]'
        )
    if (section, key) == ("outputs", "formats"):
        unknown = [f for f in value if f not in KNOWN_FORMATS] or ([] if value else ["(none)"])
        if unknown:
            raise ConfigError(
                f"{source}: '{name}' has unknown format {unknown[0]!r}; known: {', '.join(KNOWN_FORMATS)}"
            )
    if (section, key) == ("worker", "max_memory_mb") and isinstance(value, str) and value != "auto":
        raise ConfigError(
            f"{source}: '{name}' must be \"auto\" (0.6 x physical RAM) or a number of MB (0: off); "
            f'got {value!r}; for example {key} = "auto"'
        )
    if (section, key) == ("outputs", "spz_version") and value not in SPZ_VERSIONS:
        raise ConfigError(f"{source}: '{name}' must be 2 or 3 ({help_text}); got {value!r}")
    if (section, key) == ("metrics", "port") and not 0 <= value <= 65535:
        raise ConfigError(f"{source}: '{name}' must be a port number from 0 to 65535; got {value!r}")
    if (section, key) == ("model", "factory") and value != "sharp" and ":" not in value:
        raise ConfigError(f'{source}: \'{name}\' must be "sharp" or "package.module:function"; got {value!r}')
    return value


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    """TOML booleans are Python ints; never let ``true`` pass for a number."""
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _toml_literal(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value).lower()  # True -> true


def parse_formats(text: str, source: str) -> list[str]:
    """A comma-separated list of output formats (a command-line flag), checked like the
    configuration's ``[outputs] formats``; duplicates and blanks dropped, order kept."""
    items = list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
    return list(validate({"outputs": {"formats": items}}, source)["outputs"]["formats"])


def load(
    root: str | Path | None = None,
    config_path: str | Path | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Resolve the root and the file, read and validate it, and return the configuration."""
    env = os.environ if environ is None else environ
    explicit = config_path or env.get("SHARPMLD_CONFIG") or None
    root_given = root or env.get("SHARPMLD_ROOT") or None

    data: dict[str, Any] = {}
    path: Path | None = None
    if explicit:
        path = Path(os.path.expanduser(str(explicit)))
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist; run `sharpmld init`")
        data = _read(path)
    root_path = Path(os.path.expanduser(str(root_given or data.get("root") or DEFAULT_ROOT)))
    root_path = root_path.absolute()
    if path is None and (root_path / CONFIG_NAME).is_file():
        path = root_path / CONFIG_NAME
        data = _read(path)
    return Config(root=root_path, path=path, sections=validate(data, str(path or "defaults")))


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the line it names") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
