"""``sharpmld doctor``: check everything the daemon needs and say how to fix what is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sharpmld.core import memcap
from sharpmld.core.config import CHECKPOINT_URL, SHARP_INSTALL, Config
from sharpmld.core.errors import ConfigError, SandboxUnavailable
from sharpmld.supervisor import sandbox

_PROBE = """
import json, sys
out = {"python": sys.version.split()[0]}
try:
    import torch
    out["torch"] = torch.__version__
    out["mps"] = bool(torch.backends.mps.is_available())
    out["cuda"] = bool(torch.cuda.is_available())
except Exception as exc:
    out["torch_error"] = repr(exc)
try:
    import sharpmld
    out["sharpmld"] = sharpmld.__version__
except Exception as exc:
    out["sharpmld_error"] = repr(exc)
spec = sys.argv[1]
try:
    from sharpmld.worker.model import resolve_factory
    resolve_factory(spec)
    out["factory"] = "ok"
except Exception as exc:
    out["factory_error"] = getattr(exc, "message", repr(exc))
print(json.dumps(out))
"""


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def diagnose(root: str | None, config_path: str | None) -> list[Check]:
    """Run every check; never raises."""
    from sharpmld.core import config as config_mod
    from sharpmld.queue.layout import Layout

    checks: list[Check] = []
    try:
        cfg = config_mod.load(root=root, config_path=config_path)
    except ConfigError as exc:
        return [Check("configuration", False, exc.message, "fix the key it names")]
    checks.append(Check("configuration", True, str(cfg.path or "defaults (no sharpmld.toml)")))
    checks.append(memory_cap_check(cfg))

    layout = Layout(cfg.root)
    try:
        layout.ensure()
        free_gb = layout.free_bytes() / 1e9
        checks.append(Check("folders", True, f"{cfg.root} ({free_gb:.1f} GB free)"))
    except (OSError, ConfigError) as exc:
        checks.append(Check("folders", False, str(exc), f"make {cfg.root} writable, on one volume"))

    if cfg.get("worker", "sandbox"):
        checks.append(sandbox_check(cfg))

    python = cfg.worker_python or sys.executable
    probe = _probe(python, cfg.get("model", "factory"))
    if "error" in probe:
        checks.append(
            Check(
                "worker python",
                False,
                probe["error"],
                "set [worker] python to a Python with torch and sharpmld installed",
            )
        )
        return checks
    checks.append(Check("worker python", True, f"{python} (Python {probe.get('python')})"))
    if "torch_error" in probe:
        checks.append(Check("torch", False, probe["torch_error"], "pip install torch"))
    else:
        devices = [d for d in ("mps", "cuda") if probe.get(d)] or ["cpu only"]
        checks.append(Check("torch", True, f"{probe['torch']}; accelerators: {', '.join(devices)}"))
    if "sharpmld_error" in probe:
        checks.append(
            Check(
                "sharpmld in worker",
                False,
                probe["sharpmld_error"],
                f"pip install sharpmld into {python}'s environment",
            )
        )
    if "factory_error" in probe:
        fix = SHARP_INSTALL if cfg.get("model", "factory") == "sharp" else "fix [model] factory"
        checks.append(Check("model code", False, probe["factory_error"], fix))
    else:
        checks.append(Check("model code", True, f"factory {cfg.get('model', 'factory')!r} imports"))
    ckpt = cfg.checkpoint
    if ckpt.is_file():
        checks.append(Check("checkpoint", True, f"{ckpt} ({ckpt.stat().st_size / 1e9:.2f} GB)"))
    else:
        checks.append(
            Check(
                "checkpoint",
                False,
                f"{ckpt} does not exist",
                f'curl -L --create-dirs -o "{ckpt}" {CHECKPOINT_URL}',
            )
        )
    return checks


def memory_cap_check(cfg: Config, ram: Callable[[], int] = memcap.physical_ram) -> Check:
    """The worker memory cap in force and where it comes from: "auto" depends on the machine,
    so the figure is said rather than left for the person to work out."""
    return Check(
        "worker memory cap", True, memcap.resolve(cfg.get("worker", "max_memory_mb"), ram).describe()
    )


def sandbox_check(cfg: Config) -> Check:
    """Run the sandbox tool as the daemon will: a kernel that refuses user namespaces only
    shows when the tool is run, and then as the worker exiting with status 1."""
    try:
        prefix = sandbox.sandbox_prefix(True, root=cfg.root)
        sandbox.probe(prefix)
    except ValueError as exc:
        return Check("sandbox", False, str(exc), SandboxUnavailable.advice)
    except SandboxUnavailable as exc:
        return Check("sandbox", False, exc.message, exc.advice)
    return Check("sandbox", True, f"{' '.join(sandbox.probe_command(prefix))} works")


def _probe(python: str, factory: str) -> dict[str, Any]:
    try:
        proc = subprocess.run([python, "-c", _PROBE, factory], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"cannot run {python}: {exc}"}
    try:
        data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"{python} failed: {proc.stderr.strip()[-300:]}"}
    return data


def format_report(checks: list[Check]) -> str:
    """One line per check, with the fix under each failure."""
    lines = []
    for c in checks:
        lines.append(f"[{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    verdict = "everything needed is in place" if all(c.ok for c in checks) else "problems found"
    lines.append(verdict)
    return "\n".join(lines)
