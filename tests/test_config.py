"""Settings: sizes, the precedence default < pyproject.toml < environment < command line,
errors that name the setting, and the CLI and docs made from the one declaration."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from rootserve.cli import build_parser
from rootserve.config import (
    Config,
    ConfigError,
    load_config,
    parse_size,
    reference_markdown,
    setting_info,
)

KIB = 1024
MIB = 1024 * KIB


def pyproject(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n\n[tool.rootserve]\n' + table)
    return path


# -- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("16384", 16384),
        ("16b", 16),
        ("16k", 16 * KIB),
        ("16KB", 16 * KIB),
        ("16KiB", 16 * KIB),
        (" 16 kib ", 16 * KIB),
        ("1m", MIB),
        ("100MiB", 100 * MIB),
        ("2g", 2 * 1024 * MIB),
        ("1GiB", 1024 * MIB),
    ],
)
def test_parse_size(text: str, size: int):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "KiB", "1.5MiB", "-1", "10TB", "1 0", "ten", "0x10"])
def test_parse_size_refuses(text: str):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


# -- precedence ----------------------------------------------------------------------------


def test_defaults():
    assert load_config({}, environ={}) == Config()
    config = Config()
    assert (config.host, config.port, config.lifespan, config.interface) == (
        "127.0.0.1",
        8000,
        "auto",
        "auto",
    )
    assert config.max_body_size == 100 * MIB
    assert config.timeout_keep_alive == 5.0


def test_precedence_default_file_env_cli(tmp_path: Path):
    path = pyproject(
        tmp_path, 'root_path = "/file"\nport = 1111\napp = "file:app"\nlog-level = "warning"\n'
    )
    environ = {"ROOTSERVE_PORT": "2222", "ROOTSERVE_ROOT_PATH": "/env", "ROOTSERVE_APP": "env:app"}
    config = load_config({"root_path": "/cli"}, environ=environ, pyproject=path)
    assert config.root_path == "/cli"  # the command line beats everything
    assert config.port == 2222  # the environment beats the file
    assert config.app == "env:app"
    assert config.log_level == "warning"  # the file beats the default
    assert config.host == "127.0.0.1"  # the default when nobody says


def test_cli_values_arrive_parsed_from_argparse(tmp_path: Path):
    argv = ["--timeout-keep-alive", "0.5", "--no-access-log", "--max-body-size", "2MiB"]
    argv += ["--bind", "127.0.0.1:0", "--bind", "unix:/tmp/x.sock", "pkg.mod:app"]
    args = vars(build_parser().parse_args(argv))
    path = pyproject(tmp_path, 'access_log = true\nbind = ["0.0.0.0:1"]\n')
    config = load_config(args, environ={"ROOTSERVE_ACCESS_LOG": "yes"}, pyproject=path)
    assert config.timeout_keep_alive == 0.5
    assert config.access_log is False
    assert config.max_body_size == 2 * MIB
    assert config.bind == ["127.0.0.1:0", "unix:/tmp/x.sock"]
    assert config.app == "pkg.mod:app"


def test_unset_flags_do_not_hide_the_file(tmp_path: Path):
    # argparse must not put defaults (APP=None, factory=False...) in front of the file.
    args = vars(build_parser().parse_args([]))
    assert args == {}
    path = pyproject(tmp_path, 'app = "from.file:app"\nfactory = true\n')
    config = load_config(args, environ={}, pyproject=path)
    assert (config.app, config.factory) == ("from.file:app", True)


def test_pyproject_value_types(tmp_path: Path):
    path = pyproject(
        tmp_path,
        "port = 0\n"
        "timeout-graceful = 2.5\n"
        "timeout_header = 3\n"
        'max-body-size = "1MiB"\n'
        "max_header_size = 4096\n"
        "access-log = false\n"
        'server_header = "off"\n'
        'bind = ["127.0.0.1:0", "unix:/tmp/s"]\n'
        'interface = "asgi"\n',
    )
    config = load_config({}, environ={}, pyproject=path)
    assert config.port == 0
    assert config.timeout_graceful == 2.5
    assert config.timeout_header == 3.0
    assert config.max_body_size == MIB
    assert config.max_header_size == 4096
    assert config.access_log is False
    assert config.server_header is False
    assert config.bind == ["127.0.0.1:0", "unix:/tmp/s"]
    assert config.interface == "asgi"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False)],
)
def test_environment_booleans(text: str, value: bool):
    assert load_config({}, environ={"ROOTSERVE_DATE_HEADER": text}).date_header is value


def test_environment_lists_and_sizes():
    environ = {"ROOTSERVE_BIND": "127.0.0.1:0, unix:/tmp/a", "ROOTSERVE_MAX_BODY_SIZE": "8k"}
    config = load_config({}, environ=environ)
    assert config.bind == ["127.0.0.1:0", "unix:/tmp/a"]
    assert config.max_body_size == 8 * KIB


def test_missing_or_unrelated_pyproject_gives_defaults(tmp_path: Path):
    assert load_config({}, environ={}, pyproject=tmp_path / "nope.toml") == Config()
    other = tmp_path / "pyproject.toml"
    other.write_text("[tool.black]\nline-length = 100\n")
    assert load_config({}, environ={}, pyproject=other) == Config()


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().port = 1  # type: ignore[misc]


# -- errors name the setting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("port", "eighty"),
        ("port", "70000"),
        ("timeout_keep_alive", "-1"),
        ("timeout_header", "soon"),
        ("max_body_size", "lots"),
        ("max_header_count", "-5"),
        ("lifespan", "maybe"),
        ("loop", "trio"),
        ("access_log", "perhaps"),
    ],
)
def test_bad_environment_value_names_the_variable(name: str, value: str):
    variable = "ROOTSERVE_" + name.upper()
    with pytest.raises(ConfigError) as caught:
        load_config({}, environ={variable: value})
    assert variable in str(caught.value)
    assert value in str(caught.value)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('port = "eighty"', "port"),
        ("port = true", "port"),
        ("port = 80.5", "port"),
        ("timeout-header = -2", "timeout-header"),
        ('lifespan = "maybe"', "lifespan"),
        ("access_log = 3", "access_log"),
    ],
)
def test_bad_pyproject_value_names_the_key(tmp_path: Path, line: str, key: str):
    path = pyproject(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config({}, environ={}, pyproject=path)
    assert str(path) in str(caught.value)
    assert key in str(caught.value)


def test_unknown_pyproject_key_is_rejected(tmp_path: Path):
    path = pyproject(tmp_path, "wrokers = 4\n")
    with pytest.raises(ConfigError, match="no setting 'wrokers'"):
        load_config({}, environ={}, pyproject=path)


def test_invalid_toml_is_a_config_error(tmp_path: Path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.rootserve\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config({}, environ={}, pyproject=path)


def test_tool_rootserve_must_be_a_table(tmp_path: Path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool]\nrootserve = 3\n")
    with pytest.raises(ConfigError, match="must be a table"):
        load_config({}, environ={}, pyproject=path)


@pytest.mark.parametrize("setting", ["TIMEOUT_KEEP_ALIVE", "TIMEOUT_HEADER", "TIMEOUT_GRACEFUL"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_timeouts_must_be_finite(setting: str, value: str):
    # A NaN deadline never passes: the timeout would be silently off.
    with pytest.raises(ConfigError, match=f"ROOTSERVE_{setting}"):
        load_config({}, environ={f"ROOTSERVE_{setting}": value})


# -- one declaration, many readers ---------------------------------------------------------


def test_every_setting_has_its_flag_and_variable():
    names = [f.name for f in dataclasses.fields(Config)]
    infos = setting_info()
    assert [info.name for info in infos] == names
    for info in infos:
        assert info.flag == "--" + info.name.replace("_", "-")
        assert info.env == "ROOTSERVE_" + info.name.upper()
        assert info.help.strip()


def test_reference_markdown_lists_every_setting():
    page = reference_markdown()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    infos = setting_info()
    assert len(rows) == len(infos)
    for info, row in zip(infos, rows, strict=True):
        assert f"`{info.env}`" in row
        if info.positional:
            assert f"`{info.metavar}` (argument)" in row
        else:
            assert f"`{info.flag}" in row
        if info.choices:
            assert all(f"`{choice}`" in row for choice in info.choices)


def test_help_lists_every_setting():
    text = build_parser().format_help()
    for info in setting_info():
        assert (info.metavar if info.positional else info.flag) in text


def _help_section(title: str) -> str:
    text = build_parser().format_help()
    return text.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]


def _flags_in(section: str) -> list[str]:
    return [line.split()[0] for line in section.splitlines() if line.startswith("  --")]


def test_help_groups_listen_settings():
    flags = _flags_in(_help_section("where to listen"))
    for flag in ("--host", "--bind", "--backlog"):
        assert flag in flags


def test_help_lists_port_with_host():
    assert "--port" in _flags_in(_help_section("where to listen"))


def test_parser_refuses_bad_values_before_config():
    parser = build_parser()
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--port", "eighty"])
    assert caught.value.code == 2


def _field_default(name: str) -> Any:
    return {info.name: info.default for info in setting_info()}[name]


def test_list_defaults_are_not_shared():
    assert _field_default("bind") == []
    one, two = Config(), Config()
    assert one.bind == two.bind == []
    assert one.bind is not two.bind
