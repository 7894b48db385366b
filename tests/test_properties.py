"""Property tests: the name sanitisers and the inbox readiness rule, for any input.

Names come from people and their tools, so any Unicode at all (control characters, ``/``,
``..``, decomposed accents, lone surrogates from non-UTF-8 bytes, huge lengths) must become a
single safe path component. The readiness rule is driven with a fake clock over a real folder:
whatever sequence of writes, renames, temp files and pauses happens, an entry is reported ready
exactly when its tree has been still for ``settle`` seconds and holds no in-progress file (or,
the stale rule, an in-progress file that has not changed for a long time).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharpmld.daemon.stems import output_stem
from sharpmld.intake.scanner import STALE_IN_PROGRESS, InboxScanner
from sharpmld.queue.jobid import MAX_SLUG, is_job_id, new_job_id, slug

SAFE_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")
STEM_MAX_BYTES = 226  # 255 - len(".sharpmld-tmp-xxxxxxxx-") - len(".splat")

# Text as hostile as file names get: any code point (surrogates stand for non-UTF-8 bytes),
# weighted towards the characters that break naive sanitisers.
_TRICKY = st.sampled_from(
    [
        "/", "\\", ".", "..", "\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\u0301", "\u2215",
        "\uff0f", "\u200b", "\ufeff", "\udcff", "\U0002a6d6", "写", "ß", "İ", "ﬁ", "\ufdfa", "-",
        "_", " ", "e", "E", "a\u0308", "\u00e4", "\u1100\u1161", "ς", "Σ",
    ]
)  # fmt: skip
NAMES = st.lists(st.one_of(_TRICKY, st.text(max_size=8)), max_size=40).map("".join)
HUGE_NAMES = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=4), st.integers(1, 5000))
TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC))


def _is_safe_component(name: str) -> bool:
    return bool(SAFE_COMPONENT.fullmatch(name)) and name not in (".", "..")


# -- job ids ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(NAMES, HUGE_NAMES))
def test_slug_is_one_short_safe_ascii_component(name: str) -> None:
    s = slug(name)
    assert _is_safe_component(s), repr(s)
    assert 1 <= len(s) <= MAX_SLUG
    assert s.isascii()
    assert not s.startswith(("-", ".", "_")) and not s.endswith(("-", ".", "_"))
    assert "--" not in s
    assert slug(s) == s  # idempotent: an id's slug survives a retry through the inbox


@settings(max_examples=300, deadline=None)
@given(st.one_of(NAMES, HUGE_NAMES), TIMES, st.booleans())
def test_job_id_is_a_safe_component_that_is_job_id_accepts(name: str, when: datetime, is_file: bool) -> None:
    job_id = new_job_id(name, when, is_file=is_file)
    assert is_job_id(job_id), repr(job_id)
    assert _is_safe_component(job_id)
    assert len(job_id) <= len("20261121T223400Z-") + MAX_SLUG + len("-ffff")
    assert job_id.startswith(when.strftime("%Y%m%dT%H%M%SZ-"))


@settings(max_examples=200, deadline=None)
@given(NAMES, NAMES, TIMES, st.integers(1, 10**9))
def test_job_ids_sort_by_time_first(a: str, b: str, when: datetime, gap: int) -> None:
    if when.year >= 9960:
        return  # ids are for this world: the stamp has four-digit years
    later = when + timedelta(seconds=gap)
    assert new_job_id(a, when) < new_job_id(b, later)


def test_slug_examples() -> None:
    assert slug("Cafe\u0301 ..\n/etc/passwd") == "Cafe-..-etc-passwd"
    assert slug("..") == slug("/") == slug("写真") == slug("") == "job"
    # NFKD turns U+FF0F into "/" (then "-"); U+2215 has no ASCII form and simply disappears.
    assert slug("a\u2215b\uff0fc") == "ab-c"


# -- output stems ---------------------------------------------------------------------------

REL_PARTS = st.one_of(NAMES, st.sampled_from(["IMG 1.jpg", "img 1.JPG", "a.b.c", ".", "..", "x."]))
RELS = st.lists(REL_PARTS, min_size=1, max_size=4).map("/".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(RELS, HUGE_NAMES), min_size=1, max_size=12))
def test_output_stems_are_safe_unique_and_bounded(rels: list[str]) -> None:
    taken: set[str] = set()
    stems = [output_stem(rel, taken) for rel in rels]
    folded = [s.casefold() for s in stems]
    assert len(set(folded)) == len(stems), stems  # unique even on a case-insensitive volume
    assert len({s.lower() for s in stems}) == len(stems)
    for stem in stems:
        assert stem and stem not in (".", ".."), repr(stem)
        assert "/" not in stem and "\\" not in stem and "\x00" not in stem
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in stem), repr(stem)
        assert not stem.startswith("."), repr(stem)  # a dot-name would be hidden, and ignored
        assert not stem.startswith("-"), repr(stem)  # would read as an option to shell tools
        assert unicodedata.is_normalized("NFC", stem), repr(stem)
        assert len(stem.encode("utf-8")) <= STEM_MAX_BYTES, len(stem.encode("utf-8"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a.jpg", "A.jpg", "a.png", "a-2.jpg", "a/b.jpg", "a-b.jpg"]), max_size=12))
def test_output_stems_stay_unique_when_names_collide(rels: list[str]) -> None:
    taken: set[str] = set()
    stems = [output_stem(rel, taken) for rel in rels]
    assert len({s.casefold() for s in stems}) == len(stems), stems


def test_output_stem_examples() -> None:
    taken: set[str] = set()
    assert output_stem("trip/IMG 1.jpg", taken) == "trip-IMG_1"
    assert output_stem("Cafe\u0301.jpg", taken) == "Caf\u00e9"
    assert output_stem("Caf\u00e9.png", taken) == "Caf\u00e9-2"
    assert output_stem("-n.jpg", taken) == "n"
    assert output_stem("-rf --help.jpg", taken) == "rf_--help"
    assert output_stem("--/-x.png", taken) == "x"
    assert output_stem("-.jpg", taken) == "image"
    assert output_stem("写" * 85 + "/" + "真" * 83 + ".jpg", taken).encode().__len__() <= 180


# -- the readiness rule ------------------------------------------------------------------------

SETTLE = 1.0
STALE = max(STALE_IN_PROGRESS, 10 * SETTLE)
JOB = "job"  # a folder job
LOOSE = "loose.jpg"  # a loose-file job
LOOSE_PART = "loose.jpg.part"  # its download in progress: not an entry at all until renamed

# (op, argument). File indices pick among a few names, so ops hit the same files repeatedly.
WAITS = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 0.99, 1.0, 1.01, 3.0, STALE - 1, STALE - 0.01, STALE]),
    st.floats(0, 2.5, allow_nan=False),
)
OPS = st.one_of(
    st.tuples(st.just("wait"), WAITS),
    st.tuples(st.just("wait"), WAITS),  # twice: pauses are what let entries settle
    st.tuples(st.sampled_from(["append", "touch", "rename", "temp_start", "temp_finish", "temp_abort"]),
              st.integers(0, 2)),
    st.tuples(st.sampled_from(["mkdir_job", "rmtree_job", "mkdir_sub", "junk", "loose_append",
                               "loose_part", "loose_part_done", "loose_remove"]), st.just(0)),
)  # fmt: skip


@dataclass
class Model:
    """What the rule says: per entry, when its tree last changed and whether a temp file is in it."""

    changed: dict[str, float] = field(default_factory=dict)
    temps: set[str] = field(default_factory=set)  # in-progress names present inside the job folder

    def ready(self, name: str, now: float) -> bool:
        if name not in self.changed:
            return False
        still = now - self.changed[name]
        in_progress = name == JOB and bool(self.temps)
        return still >= STALE if in_progress else still >= SETTLE


class World:
    """The real folder, mutated by operations; each one reports whether an entry's tree changed."""

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox
        self.job = inbox / JOB
        self.mtime = 1_000_000_000

    def _file(self, i: int) -> Path:
        return self.job / f"f{i}.jpg"

    def apply(self, op: str, arg: int) -> tuple[str | None, str | None, str | None]:
        """Do ``op``; return (entry changed, temp name added, temp name removed)."""
        job = self.job
        if op == "mkdir_job" and not job.exists():
            job.mkdir()
            return JOB, None, None
        if op == "rmtree_job" and job.exists():
            shutil.rmtree(job)
            return JOB, None, "*"
        if not job.exists() and op in ("append", "touch", "rename", "temp_start", "mkdir_sub", "junk"):
            return None, None, None
        if op == "append":
            with open(self._file(arg), "ab") as f:
                f.write(b"x" * (arg + 1))
            return JOB, None, None
        if op == "touch" and self._file(arg).exists():
            self.mtime += 7  # a distinct mtime each time: a change the signature must see
            os.utime(self._file(arg), (self.mtime, self.mtime))
            return JOB, None, None
        if op == "rename" and self._file(arg).exists():
            self._file(arg).rename(job / f"renamed-{self.mtime}-{arg}.jpg")
            self.mtime += 1
            return JOB, None, None
        if op == "temp_start":
            temp = (f".f{arg}.jpg.Ab12C{arg}", f"f{arg}.jpg.part", f"sub{arg}.tmp")[arg]
            with open(job / temp, "ab") as f:
                f.write(b"y")
            return JOB, temp, None
        if op in ("temp_finish", "temp_abort") and job.exists():
            temps = sorted(n for n in os.listdir(job) if n.startswith(".f") or n.endswith((".part", ".tmp")))
            if not temps:
                return None, None, None
            temp = temps[arg % len(temps)]
            if op == "temp_finish":
                (job / temp).rename(job / f"done-{self.mtime}.jpg")
                self.mtime += 1
            else:
                (job / temp).unlink()
            return JOB, None, temp
        if op == "mkdir_sub" and not (job / "sub").exists():
            (job / "sub").mkdir()
            return JOB, None, None
        if op == "junk":
            with open(job / ".DS_Store", "ab") as f:
                f.write(b"z")
            return JOB, None, None
        loose, part = self.inbox / LOOSE, self.inbox / LOOSE_PART
        if op == "loose_append":
            with open(loose, "ab") as f:
                f.write(b"p")
            return LOOSE, None, None
        if op == "loose_part":
            with open(part, "ab") as f:  # ignored by the scan: no entry changes
                f.write(b"q")
            return None, None, None
        if op == "loose_part_done" and part.exists():
            self.mtime += 1  # as rsync does; also keeps a same-size replacement visible
            os.utime(part, (self.mtime, self.mtime))
            part.rename(loose)  # replaces any loose.jpg: the entry changes
            return LOOSE, None, None
        if op == "loose_remove" and loose.exists():
            loose.unlink()
            return LOOSE, None, None
        return None, None, None


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(OPS, min_size=4, max_size=40))
def test_ready_iff_still_for_settle_seconds_and_no_transfer_in_progress(ops: list[tuple[str, float]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        (inbox / ".sharpmld-tmp-dotname").mkdir()  # dot-names are never entries
        scanner = InboxScanner(inbox, settle=SETTLE, marker="", max_entries=1000)
        world = World(inbox)
        model = Model()
        now = 1000.0
        world.apply("mkdir_job", 0)  # start with a job being written, seen at once
        world.apply("append", 0)
        model.changed[JOB] = now
        assert scanner.scan(now) == []
        history: list[str] = []
        for op, arg in ops:
            if op == "wait":
                now += float(arg)
            else:
                changed, added, removed = world.apply(op, int(arg))
                if changed is not None:
                    model.changed[changed] = now
                if added:
                    model.temps.add(added)
                if removed == "*":
                    model.temps.clear()
                elif removed:
                    model.temps.discard(removed)
            for name in (JOB, LOOSE):
                if not (inbox / name).exists():
                    model.changed.pop(name, None)
            history.append(f"t={now:g} {op} {arg}")
            ready = {e.name for e in scanner.scan(now)}
            expected = {n for n in (JOB, LOOSE) if model.ready(n, now)}
            assert ready == expected, "\n".join(history)
            assert set(scanner.entries) == set(model.changed)
            for name in ready:  # never ready while a write is younger than settle
                assert now - model.changed[name] >= SETTLE


def test_stale_temp_file_stops_blocking_after_the_stale_period() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp)
        (inbox / "job").mkdir()
        (inbox / "job" / "a.jpg").write_bytes(b"a")
        (inbox / "job" / "a.jpg.part").write_bytes(b"a")
        scanner = InboxScanner(inbox, settle=SETTLE, marker="", max_entries=100)
        assert scanner.scan(0.0) == []
        assert scanner.scan(STALE - 0.01) == []
        assert [e.name for e in scanner.scan(STALE)] == ["job"]
