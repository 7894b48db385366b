"""Unit tests of configuration loading and validation (sharpmld.core.config)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from sharpmld.core import config
from sharpmld.core.config import CHOICES, DEFAULTS, DEVICE_DEFAULTS, POSITIVE, Config, load, validate
from sharpmld.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "sharpmld.example.toml"

ALL_KEYS = [(section, key) for section, keys in DEFAULTS.items() for key in keys]
NUMERIC_KEYS = [
    (section, key)
    for section, key in ALL_KEYS
    if set(DEFAULTS[section][key][1]) <= {int, float}
    and (section, key) not in POSITIVE
    # a choice of versions, checked by its own tests below
    and (section, key) != ("outputs", "spz_version")
]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``~`` points into the test's temp dir, so no real ~/SharpML is ever read."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data))
    return path


def refuse(data: dict[str, Any]) -> str:
    """Validate ``data``, expect a ConfigError, and return its message."""
    with pytest.raises(ConfigError) as info:
        validate(data, "test.toml")
    message = info.value.message
    assert message.startswith("test.toml: "), message
    return message


# --- defaults and the example file ------------------------------------------------------------


def test_no_file_gives_the_defaults(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cfg = load(root=root, environ={})
    assert cfg.path is None
    assert cfg.root == root
    assert cfg.sections == {}
    for section, key in ALL_KEYS:
        assert cfg.get(section, key) == DEFAULTS[section][key][0], f"{section}.{key}"
    assert cfg.worker_python is None
    assert cfg.checkpoint == Path(config.DEFAULT_CHECKPOINT.replace("~", str(Path.home()), 1))


def test_every_default_passes_its_own_validation() -> None:
    data = {section: {key: v[0] for key, v in keys.items()} for section, keys in DEFAULTS.items()}
    assert validate(data, "defaults") == data


def test_example_file_is_valid_toml_with_every_key_at_its_default() -> None:
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    assert data.get("root") == config.DEFAULT_ROOT
    assert set(data) == {"root", *DEFAULTS}
    for section, keys in DEFAULTS.items():
        assert set(data[section]) == set(keys), f"[{section}] keys differ from DEFAULTS"
        for key, (default, _types, _help) in keys.items():
            value = data[section][key]
            assert value == default, f"{section}.{key} = {value!r}, default is {default!r}"
            assert type(value) is type(default), f"{section}.{key}: {type(value)} vs {type(default)}"
    validate(data, str(EXAMPLE))


def test_example_file_loads_as_the_defaults(tmp_path: Path, _home: Path) -> None:
    cfg = load(config_path=EXAMPLE, environ={})
    assert cfg.path == EXAMPLE
    assert cfg.root == _home / "SharpML"
    for section, key in ALL_KEYS:
        assert cfg.get(section, key) == DEFAULTS[section][key][0], f"{section}.{key}"
    assert cfg.as_toml_dict() == load(root=_home / "SharpML", environ={}).as_toml_dict()


def test_example_file_comments_every_key_and_names_the_env_overrides() -> None:
    text = EXAMPLE.read_text("utf-8")
    head = text.split("[model]", 1)[0]
    assert "SHARPMLD_ROOT" in head
    assert "SHARPMLD_CONFIG" in head
    lines = text.splitlines()
    assignment = re.compile(r"^([A-Za-z_]+)\s*=")
    seen = []
    for i, line in enumerate(lines):
        m = assignment.match(line)
        if not m:
            continue
        seen.append(m.group(1))
        previous = next(p for p in reversed(lines[:i]) if p.strip())
        assert previous.lstrip().startswith("#"), f"{m.group(1)} has no comment above it"
    for section, keys in DEFAULTS.items():
        assert f"[{section}]" in text
        for key in keys:
            assert key in seen, f"{section}.{key} missing from the example"


def test_as_toml_dict_round_trips_through_a_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    path = write(root / config.CONFIG_NAME, {"log": {"level": "debug"}, "limits": {"max_images": 7}})
    cfg = load(root=root, environ={})
    assert cfg.path == path
    written = write(tmp_path / "full.toml", cfg.as_toml_dict())
    again = load(config_path=written, environ={})
    assert again.root == root
    assert again.get("log", "level") == "debug"
    assert again.get("limits", "max_images") == 7
    assert again.as_toml_dict() == cfg.as_toml_dict()


# --- unknown names ----------------------------------------------------------------------------


def test_unknown_section_is_refused_and_known_ones_listed() -> None:
    message = refuse({"modle": {"device": "cpu"}})
    assert "'modle'" in message
    for name in ("root", *DEFAULTS):
        assert name in message


def test_unknown_key_is_refused_with_its_dotted_name_and_the_known_keys() -> None:
    message = refuse({"model": {"devcie": "cpu"}})
    assert "model.devcie" in message
    for key in DEFAULTS["model"]:
        assert key in message


def test_key_of_another_section_is_unknown_here() -> None:
    message = refuse({"worker": {"max_images": 3}})
    assert "worker.max_images" in message


def test_section_must_be_a_table() -> None:
    message = refuse({"model": "cpu"})
    assert "'model'" in message and "[model]" in message


def test_root_must_be_a_string() -> None:
    message = refuse({"root": 5})
    assert "'root'" in message


# --- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "example"),
    [
        ("model", "device", 3, 'device = "auto"'),
        ("model", "checkpoint", ["a.pt"], "checkpoint = "),
        ("worker", "python", False, 'python = ""'),
        ("worker", "image_timeout_seconds", "fast", 'image_timeout_seconds = "auto"'),
        ("limits", "max_images", 1.5, "max_images = 100"),
        ("limits", "max_file_mb", "20", "max_file_mb = 20.0"),
        ("intake", "ready_marker", 1, 'ready_marker = ""'),
        ("queue", "max_attempts", {"n": 3}, "max_attempts = 3"),
        ("log", "level", 20, 'level = "info"'),
    ],
)
def test_wrong_type_names_the_key_and_gives_an_example(
    section: str, key: str, value: Any, example: str
) -> None:
    message = refuse({section: {key: value}})
    assert f"'{section}.{key}'" in message
    assert "for example" in message
    assert example in message


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("limits", "max_images", True),
        ("worker", "image_timeout_seconds", True),
        ("worker", "max_memory_mb", False),
        ("queue", "shutdown_grace_seconds", False),
    ],
)
def test_bool_is_not_accepted_as_a_number(section: str, key: str, value: bool) -> None:
    message = refuse({section: {key: value}})
    assert f"'{section}.{key}'" in message
    assert "for example" in message


def test_bool_is_refused_when_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[limits]\nmax_images = true\n")
    with pytest.raises(ConfigError, match=r"limits\.max_images"):
        load(root=tmp_path / "root", config_path=path, environ={})


@pytest.mark.parametrize(("section", "key"), ALL_KEYS)
def test_the_example_in_a_type_error_is_valid_toml_that_passes(section: str, key: str) -> None:
    types = DEFAULTS[section][key][1]
    wrong: Any = "text" if str not in types else 12345 if int not in types else ["a list"]
    message = refuse({section: {key: wrong}})
    example = message.split("for example ", 1)[1]
    parsed = tomllib.loads(example)
    assert parsed == {key: DEFAULTS[section][key][0]}
    assert validate({section: parsed}, "t") == {section: parsed}


def test_bool_keys_take_only_booleans() -> None:
    bool_keys = [(s, k) for s, k in ALL_KEYS if DEFAULTS[s][k][1] == (bool,)]
    for section, key in bool_keys:
        for value in (True, False):
            assert validate({section: {key: value}}, "t") == {section: {key: value}}
        for bad in (1, 0, "true", "yes"):
            message = refuse({section: {key: bad}})
            assert f"'{section}.{key}'" in message


def test_int_is_accepted_where_a_float_is_expected() -> None:
    assert validate({"worker": {"image_timeout_seconds": 5}}, "t") == {"worker": {"image_timeout_seconds": 5}}


# --- choices ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "bad"),
    [
        ("model", "device", "gpu"),
        ("intake", "observer", "inotify"),
        ("log", "level", "verbose"),
        ("log", "format", "xml"),
        ("log", "level", "INFO"),
    ],
)
def test_choices_refuse_other_values_and_list_the_allowed_ones(section: str, key: str, bad: str) -> None:
    message = refuse({section: {key: bad}})
    assert f"'{section}.{key}'" in message
    assert repr(bad) in message
    for allowed in CHOICES[(section, key)]:
        assert allowed in message


@pytest.mark.parametrize(("section", "key"), sorted(CHOICES))
def test_every_choice_is_accepted(section: str, key: str) -> None:
    for allowed in CHOICES[(section, key)]:
        assert validate({section: {key: allowed}}, "t") == {section: {key: allowed}}


# --- ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("section", "key"), sorted(POSITIVE))
def test_positive_keys_refuse_zero_and_negatives(section: str, key: str) -> None:
    for value in (0, -1):
        message = refuse({section: {key: value}})
        assert f"'{section}.{key}'" in message
        assert "greater than 0" in message


@pytest.mark.parametrize(("section", "key"), NUMERIC_KEYS)
def test_other_numeric_keys_accept_zero_but_not_negatives(section: str, key: str) -> None:
    assert validate({section: {key: 0}}, "t") == {section: {key: 0}}
    message = refuse({section: {key: -1}})
    assert f"'{section}.{key}'" in message
    assert "0 or more" in message


def test_positive_table_only_names_real_numeric_keys() -> None:
    for section, key in POSITIVE:
        auto = {str} if (section, key) in DEVICE_DEFAULTS else set()
        assert set(DEFAULTS[section][key][1]) <= {int, float} | auto, f"{section}.{key}"
    assert NUMERIC_KEYS, "expected some numeric keys where 0 means off/unlimited"


# --- the factory ------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["sharp", "tiny_sharp:create", "pkg.module:make_model"])
def test_factory_accepts_sharp_or_module_colon_function(good: str) -> None:
    assert validate({"model": {"factory": good}}, "t") == {"model": {"factory": good}}


@pytest.mark.parametrize("bad", ["tiny_sharp", "", "SHARP", "pkg.module.create"])
def test_factory_refuses_anything_else(bad: str) -> None:
    message = refuse({"model": {"factory": bad}})
    assert "'model.factory'" in message
    assert "package.module:function" in message


# --- reading files ----------------------------------------------------------------------------


def test_invalid_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    path = root / config.CONFIG_NAME
    path.write_text('[model\ndevice = "cpu"\n')
    with pytest.raises(ConfigError) as info:
        load(root=root, environ={})
    assert str(path) in info.value.message
    assert "not valid TOML" in info.value.message


def test_validation_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    path = write(root / config.CONFIG_NAME, {"model": {"devcie": "cpu"}})
    with pytest.raises(ConfigError) as info:
        load(root=root, environ={})
    assert info.value.message.startswith(f"{path}: ")
    assert "model.devcie" in info.value.message


def test_explicit_config_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load(root=tmp_path / "root", config_path=missing, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load(root=tmp_path / "root", environ={"SHARPMLD_CONFIG": str(missing)})


def test_a_folder_in_place_of_the_file_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="does not exist"):
        load(root=tmp_path / "root", config_path=folder, environ={})
    root = tmp_path / "root"
    (root / config.CONFIG_NAME).mkdir(parents=True)
    assert load(root=root, environ={}).path is None


# --- precedence -------------------------------------------------------------------------------


def test_root_flag_beats_env_beats_file_beats_default(tmp_path: Path, _home: Path) -> None:
    flag, env_root, file_root = tmp_path / "flag", tmp_path / "env", tmp_path / "file"
    cfg_file = write(tmp_path / "c.toml", {"root": str(file_root)})

    both = {"SHARPMLD_ROOT": str(env_root), "SHARPMLD_CONFIG": str(cfg_file)}
    assert load(root=flag, environ=both).root == flag
    assert load(root=str(flag), config_path=cfg_file, environ={}).root == flag
    assert load(environ=both).root == env_root
    assert load(environ={"SHARPMLD_CONFIG": str(cfg_file)}).root == file_root
    assert load(config_path=cfg_file, environ={}).root == file_root
    assert load(environ={}).root == _home / "SharpML"


def test_empty_env_values_count_as_unset(tmp_path: Path, _home: Path) -> None:
    cfg = load(environ={"SHARPMLD_ROOT": "", "SHARPMLD_CONFIG": ""})
    assert cfg.root == _home / "SharpML"
    assert cfg.path is None


def test_root_with_tilde_is_expanded_and_made_absolute(
    tmp_path: Path, _home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load(root="~/elsewhere", environ={}).root == _home / "elsewhere"
    monkeypatch.chdir(tmp_path)
    assert load(root="relative", environ={}).root == tmp_path / "relative"


def test_config_flag_beats_env_beats_root_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    in_root = write(root / config.CONFIG_NAME, {"log": {"level": "error"}})
    from_env = write(tmp_path / "env.toml", {"log": {"level": "warning"}})
    from_flag = write(tmp_path / "flag.toml", {"log": {"level": "debug"}})
    env = {"SHARPMLD_CONFIG": str(from_env)}

    cfg = load(root=root, config_path=from_flag, environ=env)
    assert (cfg.path, cfg.get("log", "level")) == (from_flag, "debug")
    cfg = load(root=root, environ=env)
    assert (cfg.path, cfg.get("log", "level")) == (from_env, "warning")
    cfg = load(root=root, environ={})
    assert (cfg.path, cfg.get("log", "level")) == (in_root, "error")


def test_root_file_is_found_under_a_root_from_the_env(tmp_path: Path) -> None:
    root = tmp_path / "root"
    in_root = write(root / config.CONFIG_NAME, {"limits": {"max_images": 3}})
    cfg = load(environ={"SHARPMLD_ROOT": str(root)})
    assert cfg.path == in_root
    assert cfg.get("limits", "max_images") == 3


def test_root_file_is_not_read_when_a_config_is_given(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / config.CONFIG_NAME, {"model": {"devcie": "broken"}})
    explicit = write(tmp_path / "ok.toml", {"log": {"level": "debug"}})
    cfg = load(root=root, config_path=explicit, environ={})
    assert cfg.path == explicit


def test_config_flag_with_tilde_is_expanded(_home: Path) -> None:
    path = write(_home / "my.toml", {"log": {"level": "warning"}})
    cfg = load(root=_home / "r", config_path="~/my.toml", environ={})
    assert cfg.path == path
    assert cfg.get("log", "level") == "warning"


# --- paths ------------------------------------------------------------------------------------


def test_checkpoint_with_tilde_is_expanded(tmp_path: Path, _home: Path) -> None:
    path = write(tmp_path / "c.toml", {"model": {"checkpoint": "~/models/sharp.pt"}})
    cfg = load(root=tmp_path / "root", config_path=path, environ={})
    assert cfg.get("model", "checkpoint") == "~/models/sharp.pt"
    assert cfg.checkpoint == _home / "models" / "sharp.pt"


def test_relative_checkpoint_and_python_are_relative_to_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cfg = Config(root, None, {"model": {"checkpoint": "w/s.pt"}, "worker": {"python": "venv/bin/python"}})
    assert cfg.checkpoint == root / "w" / "s.pt"
    assert cfg.worker_python == str(root / "venv" / "bin" / "python")


def test_worker_python_with_tilde_is_expanded(tmp_path: Path, _home: Path) -> None:
    cfg = Config(tmp_path, None, {"worker": {"python": "~/venv/bin/python"}})
    assert cfg.worker_python == str(_home / "venv" / "bin" / "python")


# --- keys that depend on each other -----------------------------------------------------------


def test_heartbeat_must_be_well_inside_the_lease_timeout() -> None:
    queue = {"lease_timeout_seconds": 30.0, "shutdown_grace_seconds": 5.0}
    message = refuse({"queue": {**queue, "heartbeat_seconds": 10.0}})
    assert "queue.heartbeat_seconds" in message and "queue.lease_timeout_seconds" in message, message
    validate({"queue": {**queue, "heartbeat_seconds": 9.9}}, "test.toml")


def test_heartbeat_is_checked_against_the_default_lease_timeout() -> None:
    lease = DEFAULTS["queue"]["lease_timeout_seconds"][0]
    message = refuse({"queue": {"heartbeat_seconds": lease / 2}})
    assert "queue.heartbeat_seconds" in message and "queue.lease_timeout_seconds" in message, message


def test_stop_grace_must_be_shorter_than_the_lease_timeout() -> None:
    message = refuse({"queue": {"lease_timeout_seconds": 60.0, "shutdown_grace_seconds": 60.0}})
    assert "queue.shutdown_grace_seconds" in message and "queue.lease_timeout_seconds" in message, message
    validate({"queue": {"lease_timeout_seconds": 60.0, "shutdown_grace_seconds": 59.0}}, "test.toml")


def test_a_longer_lease_timeout_allows_a_longer_stop_grace() -> None:
    validate({"queue": {"lease_timeout_seconds": 1200.0, "shutdown_grace_seconds": 600.0}}, "test.toml")


FLOAT_KEYS = [(s, k) for s, k in ALL_KEYS if float in DEFAULTS[s][k][1]]


@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_infinity_are_refused_naming_the_key(section: str, key: str, value: float) -> None:
    """nan compares false with everything, so ``value <= 0`` let it through as a valid timeout."""
    message = refuse({section: {key: value}})
    assert f"'{section}.{key}'" in message
    assert repr(value) in message


# --- output variants for viewers -------------------------------------------------------------


def test_output_variants_default_to_what_most_viewers_open() -> None:
    assert DEFAULTS["outputs"]["ply_layout"][0] == "3dgs"
    assert DEFAULTS["outputs"]["spz_version"][0] == 2


@pytest.mark.parametrize(
    ("key", "value"),
    [("ply_layout", "3dgs"), ("ply_layout", "ml-sharp"), ("spz_version", 2), ("spz_version", 3)],
)
def test_output_variants_accept_their_values(key: str, value: Any) -> None:
    assert validate({"outputs": {key: value}}, "t") == {"outputs": {key: value}}


@pytest.mark.parametrize(
    ("key", "bad", "expected"),
    [
        ("ply_layout", "inria", r"'outputs\.ply_layout' must be one of 3dgs, ml-sharp; got 'inria'"),
        ("spz_version", 4, r"'outputs\.spz_version' must be 2 or 3 .*; got 4"),
        ("spz_version", 1, r"'outputs\.spz_version' must be 2 or 3 .*; got 1"),
        ("spz_version", "3", r"'outputs\.spz_version' must be int"),
    ],
)
def test_output_variants_refuse_other_values(key: str, bad: Any, expected: str) -> None:
    assert re.search(expected, refuse({"outputs": {key: bad}}))


def test_time_limits_are_a_number_or_auto() -> None:
    assert validate({"worker": {"image_timeout_seconds": "auto"}}, "t.toml")
    message = refuse({"worker": {"image_timeout_seconds": "long"}})
    assert "worker.image_timeout_seconds" in message and '"auto"' in message, message
    assert "greater than 0" in refuse({"worker": {"job_timeout_seconds": 0}})


# --- the worker's memory cap ([worker] max_memory_mb) ----------------------------------------


def test_memory_cap_defaults_to_auto() -> None:
    assert DEFAULTS["worker"]["max_memory_mb"][0] == "auto"
    assert Config(Path("/r"), None).get("worker", "max_memory_mb") == "auto"


@pytest.mark.parametrize("value", ["auto", 0, 6000, 4915.2])
def test_memory_cap_takes_auto_or_a_number_of_mb(value: Any) -> None:
    assert validate({"worker": {"max_memory_mb": value}}, "t") == {"worker": {"max_memory_mb": value}}


@pytest.mark.parametrize("bad", ["Auto", "", "16 GB", "60%"])
def test_memory_cap_refuses_other_words_and_says_what_it_takes(bad: str) -> None:
    message = refuse({"worker": {"max_memory_mb": bad}})
    assert "'worker.max_memory_mb'" in message and repr(bad) in message
    assert 'max_memory_mb = "auto"' in message and "0: off" in message


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan")])
def test_memory_cap_refuses_negative_and_nan(bad: float) -> None:
    assert "'worker.max_memory_mb'" in refuse({"worker": {"max_memory_mb": bad}})


def test_memory_cap_auto_round_trips_through_a_written_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", {"worker": {"max_memory_mb": "auto"}})
    assert 'max_memory_mb = "auto"' in path.read_text()
    cfg = load(root=tmp_path / "root", config_path=path, environ={})
    assert cfg.get("worker", "max_memory_mb") == "auto"
