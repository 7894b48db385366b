"""The ``sharpmld`` command line: ``main(argv)`` returns one of the named exit codes.

Heavy modules (numpy, torch, the daemon) are imported inside the commands that need them, so
``sharpmld --help`` and ``sharpmld status`` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sharpmld import __version__
from sharpmld.cli.codes import (
    RET_CONFIG,
    RET_FAILURE,
    RET_JOBS_FAILED,
    RET_NOT_FOUND,
    RET_OK,
    RET_USAGE,
    STATUS_EXIT_CODES,
)
from sharpmld.core.config import CHOICES, KNOWN_FORMATS, SPZ_VERSIONS
from sharpmld.core.errors import ConfigError, SharpmldError


def _common(p: argparse.ArgumentParser, json_flag: bool = False) -> None:
    p.add_argument("--root", help="the sharpmld folder (default: $SHARPMLD_ROOT or ~/SharpML)")
    p.add_argument("--config", help="configuration file (default: <root>/sharpmld.toml)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one sub-command per verb."""
    parser = argparse.ArgumentParser(
        prog="sharpmld",
        description="Turn folders of photos dropped into an inbox into 3D Gaussian splats.",
    )
    parser.add_argument("--version", action="version", version=f"sharpmld {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon in the foreground")
    _common(p)
    p.add_argument(
        "--burst", action="store_true", help="exit once the inbox is empty and no job is in flight"
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics on PORT instead of [metrics] port (0: a free port, written to the "
        "status file and to .sharpmld/targets/ for Prometheus)",
    )

    p = sub.add_parser(
        "worker", help="cluster mode: run one model (one GPU) on photos from the broker, any host"
    )
    _common(p)
    p.add_argument(
        "--cluster",
        metavar="URL",
        help="the NATS JetStream server, e.g. nats://studio.local:4222 (default: [cluster] url); "
        "--root is the shared folder as this host mounts it",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="serve this worker's /metrics on PORT (default 0: a free port, written to its status "
        "file and to .sharpmld/targets/ for Prometheus)",
    )
    p.add_argument(
        "--metrics-host",
        metavar="ADDRESS",
        help="address to serve /metrics on (default: [metrics] host; 0.0.0.0 lets a Prometheus "
        "on another machine scrape it)",
    )

    p = sub.add_parser("init", help="create the folder tree and a default sharpmld.toml")
    _common(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing sharpmld.toml")
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing (and succeed) when sharpmld.toml already exists",
    )

    p = sub.add_parser(
        "status",
        help="jobs per state, jobs in flight, running daemons",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes (of 5 to 8, when several apply, the first listed):\n"
        + "\n".join(f"  {code}  {meaning}" for code, meaning in STATUS_EXIT_CODES.items()),
    )
    _common(p, json_flag=True)
    p.add_argument(
        "--check",
        action="store_true",
        help="for monitoring: print one line and exit 0 only if a daemon runs, its engine is "
        "loaded and it claims jobs",
    )
    p.add_argument(
        "--failed-since",
        metavar="TIME",
        help=f"exit {RET_JOBS_FAILED} if a job failed since TIME: 2026-05-01T09:00:00Z (no zone: local time) "
        "or a span ago such as 30m, 2h, 1d",
    )

    p = sub.add_parser("submit", help="copy files or folders into the inbox safely")
    _common(p, json_flag=True)
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    p = sub.add_parser("retry", help="move a failed job's files back into the inbox")
    _common(p, json_flag=True)
    p.add_argument("job", metavar="JOB", help="job id (or a unique prefix) in failed/")

    p = sub.add_parser("cancel", help="cancel a queued job (to failed/) or stop a running one")
    _common(p, json_flag=True)
    p.add_argument("job", metavar="JOB", help="inbox name, or job id (or a unique prefix) in working/")
    p.add_argument("--now", action="store_true", help="stop a running job at once (kills the worker)")

    *first, last = (f".{name}" for name in KNOWN_FORMATS)
    p = sub.add_parser("convert", help=f"convert a 3DGS .ply to {', '.join(first)} or {last}")
    _common(p)
    p.add_argument("source", type=Path, metavar="IN.ply")
    p.add_argument("target", type=Path, metavar="OUT")
    p.add_argument(
        "--ply-layout",
        choices=CHOICES[("outputs", "ply_layout")],
        default=None,
        help="layout of a .ply written (default: [outputs] ply_layout)",
    )
    p.add_argument(
        "--spz-version",
        type=int,
        choices=SPZ_VERSIONS,
        default=None,
        help="version of a .spz written (default: [outputs] spz_version)",
    )
    p.add_argument(
        "--f-px", type=float, default=None, help="focal length in pixels, for a .ply without a camera"
    )
    p.add_argument("--size", default=None, metavar="WxH", help="image size, for a .ply without a camera")

    p = sub.add_parser("predict", help="run one image through the daemon's worker, without the daemon")
    _common(p, json_flag=True)
    p.add_argument("image", type=Path, metavar="IMAGE")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    p.add_argument("--f-px", type=float, default=None, help="focal length in pixels")
    p.add_argument(
        "--formats",
        metavar="LIST",
        help=f"output formats, comma-separated, from {','.join(KNOWN_FORMATS)} "
        "(default: [outputs] formats of the configuration)",
    )

    p = sub.add_parser("doctor", help="check the installation and say how to fix what is missing")
    _common(p, json_flag=True)

    p = sub.add_parser("serve", help="serve the web app: the queue live, the jobs, upload, the 3D viewer")
    _common(p)
    p.add_argument("--host", help="address to bind (default: [web] host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to bind (default: [web] port, 8642)")

    p = sub.add_parser("launchd", help="run at login: install, remove or show the launchd agent")
    _common(p)
    p.add_argument("action", choices=("install", "uninstall", "status", "restart", "print"))
    p.add_argument("--systemd", action="store_true", help="print a systemd user unit (Linux) instead")
    role = p.add_mutually_exclusive_group()
    role.add_argument(
        "--web", action="store_true", help="the web app's agent (sharpmld serve), not the daemon's"
    )
    role.add_argument(
        "--worker", metavar="URL", help="a cluster worker host's agent (sharpmld worker --cluster URL)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; errors meant for people never show a traceback."""
    args = build_parser().parse_args(argv)
    handler = _COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"sharpmld: configuration error: {exc.message}", file=sys.stderr)
        return RET_CONFIG
    except SharpmldError as exc:
        print(f"sharpmld: {exc.message}", file=sys.stderr)
        return RET_FAILURE
    except KeyboardInterrupt:
        return RET_FAILURE


def _config(args: argparse.Namespace) -> Any:
    from sharpmld.core import config

    return config.load(root=args.root, config_path=args.config)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def cmd_run(args: argparse.Namespace) -> int:
    from sharpmld.cli.service.logcap import cap_at_start
    from sharpmld.core import log
    from sharpmld.daemon.loop import Daemon

    cap_at_start(os.environ)  # only under launchd, whose log files nothing else rotates
    cfg = _config(args)
    if args.metrics_port is not None:
        cfg = cfg.with_value("metrics", "port", args.metrics_port, "--metrics-port")
    log.configure(cfg.get("log", "level"), cfg.get("log", "format"))
    return Daemon(cfg, burst=args.burst).run()


def cmd_worker(args: argparse.Namespace) -> int:
    from sharpmld.cli.service.logcap import cap_at_start
    from sharpmld.clusterworker.loop import ClusterWorker
    from sharpmld.core import log

    cfg = _config(args)
    cap_at_start(os.environ)  # its own agent's logs, under launchd (`launchd install --worker`)
    url = args.cluster or str(cfg.get("cluster", "url"))
    if not url:
        print(
            "sharpmld: worker needs the broker: --cluster nats://HOST:4222 or [cluster] url", file=sys.stderr
        )
        return RET_USAGE
    log.configure(cfg.get("log", "level"), cfg.get("log", "format"))
    return ClusterWorker(cfg, url, metrics_host=args.metrics_host, metrics_port=args.metrics_port).run()


def cmd_init(args: argparse.Namespace) -> int:
    import tomli_w

    from sharpmld.core import fsio
    from sharpmld.core.config import CONFIG_NAME
    from sharpmld.queue.layout import Layout

    cfg = _config(args)
    layout = Layout(cfg.root)
    layout.ensure()
    target = cfg.root / CONFIG_NAME
    if target.exists() and not args.force:
        if args.if_missing:
            return RET_OK
        print(f"sharpmld: {target} already exists (use --force to overwrite)", file=sys.stderr)
        return RET_FAILURE
    fsio.write_text(target, tomli_w.dumps(cfg.as_toml_dict()))
    print(f"Created {cfg.root} with inbox/, working/, done/, failed/ and {target.name}.")
    print(f"Drop folders of photos into {layout.inbox} and run `sharpmld run`.")
    return RET_OK


def cmd_status(args: argparse.Namespace) -> int:
    from sharpmld.cli.status import exit_code, format_status, gather, parse_since

    try:
        since = parse_since(args.failed_since) if args.failed_since is not None else None
    except ValueError as exc:
        print(f"sharpmld: {exc}", file=sys.stderr)
        return RET_USAGE
    info = gather(_config(args), since)
    code, line = exit_code(info, check=args.check)
    if args.check:
        _emit(args, {"code": code, "healthy": code == RET_OK, "message": line}, line)
    else:
        _emit(args, info, format_status(info))
    return code


def cmd_submit(args: argparse.Namespace) -> int:
    from sharpmld.cli.submit import submit

    cfg = _config(args)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"sharpmld: not found: {', '.join(missing)}", file=sys.stderr)
        return RET_NOT_FOUND
    placed = [str(submit(cfg, p)) for p in args.paths]
    _emit(args, {"submitted": placed}, "\n".join(f"submitted {p}" for p in placed))
    return RET_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from sharpmld.cli.submit import retry

    back = retry(_config(args), args.job)
    if back is None:
        print(f"sharpmld: no failed job matches {args.job!r}", file=sys.stderr)
        return RET_NOT_FOUND
    _emit(args, {"inbox": str(back)}, f"moved back to the inbox as {back}")
    return RET_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from sharpmld.cli.cancel import cancel

    outcome = cancel(_config(args), args.job, by="cli", now=args.now)
    if outcome is None:
        print(f"sharpmld: no queued or running job matches {args.job!r}", file=sys.stderr)
        return RET_NOT_FOUND
    text = (
        f"cancelled; the job is in {outcome.path}"
        if outcome.state == "failed"
        else f"cancel requested; the daemon stops {outcome.path.name} "
        + ("now" if args.now else "after the current photo")
    )
    _emit(args, {"state": outcome.state, "path": str(outcome.path)}, text)
    return RET_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from sharpmld.cli.convert import convert_settings
    from sharpmld.formats.registry import convert

    # Read like for every command, so a wrong --root/--config is said here too.
    cfg = _config(args)
    if not args.source.is_file():
        print(f"sharpmld: not found: {args.source}", file=sys.stderr)
        return RET_NOT_FOUND
    try:
        options, camera = convert_settings(cfg, args)
        convert(args.source, args.target, options, camera)
    except (ValueError, KeyError) as exc:
        print(f"sharpmld: cannot convert: {exc}", file=sys.stderr)
        return RET_FAILURE
    print(f"wrote {args.target}")
    return RET_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from sharpmld.cli.predict import predict
    from sharpmld.core.config import parse_formats

    formats = None
    if args.formats is not None:
        try:
            formats = parse_formats(args.formats, "--formats")
        except ConfigError as exc:
            print(f"sharpmld: {exc.message}", file=sys.stderr)
            return RET_USAGE
    if not args.image.is_file():
        print(f"sharpmld: not found: {args.image}", file=sys.stderr)
        return RET_NOT_FOUND
    result = predict(_config(args), args.image, args.output, f_px=args.f_px, formats=formats)
    ok = bool(result.get("ok"))
    text = (
        f"wrote {', '.join(o['path'] for o in result['result']['outputs'].values())} in {args.output}"
        if ok
        else f"sharpmld: {result['error']['message']} ({result['error']['code']})"
    )
    if ok or args.json:
        _emit(args, result, text)
    else:
        print(text, file=sys.stderr)
    return RET_OK if ok else RET_FAILURE


def cmd_doctor(args: argparse.Namespace) -> int:
    from sharpmld.cli.doctor import diagnose, format_report

    checks = diagnose(args.root, args.config)
    _emit(args, [c.__dict__ for c in checks], format_report(checks))
    return RET_OK if all(c.ok for c in checks) else RET_FAILURE


def cmd_launchd(args: argparse.Namespace) -> int:
    from sharpmld.cli import service

    return service.command(
        args.action, lambda: _config(args), systemd=args.systemd, web=args.web, worker=args.worker
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from sharpmld.cli.serve import serve
    from sharpmld.cli.service.logcap import cap_at_start

    cfg = _config(args)
    cap_at_start(os.environ)  # its own agent's logs, under launchd (`launchd install --web`)
    host = args.host or str(cfg.get("web", "host"))
    port = args.port if args.port is not None else int(cfg.get("web", "port"))
    return serve(cfg, host, port)


_COMMANDS = {
    "serve": cmd_serve,
    "run": cmd_run,
    "worker": cmd_worker,
    "init": cmd_init,
    "status": cmd_status,
    "submit": cmd_submit,
    "retry": cmd_retry,
    "cancel": cmd_cancel,
    "convert": cmd_convert,
    "predict": cmd_predict,
    "doctor": cmd_doctor,
    "launchd": cmd_launchd,
}
