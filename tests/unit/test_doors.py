"""The doors register their own ``hairseg`` sub-commands, and the serve flags are declared once.

Real: the installed package's entry points, click's command parsing, the container's
argparse parser (KServe's ``kserve.model_server.parser`` as its parent). A broken door is
made with a real ``importlib.metadata.EntryPoint`` that names a module which does not exist.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys

import click
import pytest
from click.testing import CliRunner

from hairseg import cli as hairseg_cli
from hairseg.cli import COMMANDS, DOOR_GROUP

from cli_support import run_cli  # isort: skip

DOORS = {"pipeline": "hairseg_pipelines", "serve": "hairseg_serving"}


def test_each_door_registers_its_command_through_an_entry_point() -> None:
    entry_points = {ep.name: ep for ep in importlib.metadata.entry_points(group=DOOR_GROUP)}
    assert {name: ep.module.split(".")[0] for name, ep in entry_points.items()} == DOORS
    for name, ep in entry_points.items():
        command = ep.load()
        assert isinstance(command, click.Command) and command.name == name
    # The core's own table names no door module.
    assert not {mod.split(".")[0] for mod, _, _ in COMMANDS.values()} & set(DOORS.values())
    result = CliRunner().invoke(hairseg_cli.cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line}
    assert set(DOORS) | set(COMMANDS) <= listed


def test_a_door_that_does_not_import_is_listed_and_fails_in_one_line(monkeypatch) -> None:
    broken = importlib.metadata.EntryPoint(
        name="serve", value="hairseg_no_such_door.cli:serve", group=DOOR_GROUP
    )
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda **kw: importlib.metadata.EntryPoints([broken] if kw.get("group") else []),
    )
    shown = run_cli("--help")
    assert shown.returncode == 0, shown.stderr
    (row,) = [line for line in shown.stdout.splitlines() if line.strip().startswith("serve")]
    assert "unavailable" in row and "hairseg_no_such_door" in row
    failed = run_cli("serve", "--model", "x.onnx")
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert failed.returncode == 1 and len(lines) == 1, failed.stderr
    assert lines[0].startswith("hairseg: error: 'hairseg serve' is provided by the ")
    assert "hairseg_no_such_door" in lines[0] and "ModuleNotFoundError" in lines[0]


# -- serve flags: one table for click and KServe's argparse ---------------------------------


@pytest.fixture(scope="module")
def container_parser():
    argv, sys.argv = sys.argv, sys.argv[:1]  # kserve.model_server parses argv on import
    try:
        from hairseg_serving.__main__ import build_parser
    finally:
        sys.argv = argv
    return build_parser()


def test_every_serve_flag_is_a_typed_serve_config_field() -> None:
    from hairseg_serving.flags import SERVE_FLAGS
    from hairseg_serving.settings import TIER_CHOICES, ServeConfig

    fields = {f.name: f for f in dataclasses.fields(ServeConfig)}
    for flag in SERVE_FLAGS:
        assert flag.field in fields, flag
        default = getattr(ServeConfig(), flag.field)
        assert type(default) is flag.type, (flag.field, type(default), flag.type)
    tier = next(f for f in SERVE_FLAGS if f.field == "default_tier")
    assert tier.choices == TIER_CHOICES


def test_click_and_argparse_flags_give_the_same_overrides(container_parser) -> None:
    from hairseg_serving.cli import serve
    from hairseg_serving.flags import SERVE_FLAGS, argparse_overrides

    # A distinct, non-default value per flag, from its type (new flags are covered too).
    values = {
        f.field: f.choices[-1]
        if f.choices
        else {int: 7 + i, float: 2.5 + i, str: f"v{i}", bool: False}[f.type]
        for i, f in enumerate(SERVE_FLAGS)
    }
    click_argv: list[str] = []
    argparse_argv: list[str] = []
    for flag in SERVE_FLAGS:
        value = values[flag.field]
        if flag.type is bool:
            click_argv.append(f"--{'' if value else 'no-'}{flag.field.replace('_', '-')}")
            argparse_argv.append(f"--{'' if value else 'no_'}{flag.field}")
            continue
        click_argv += [f"--{flag.field.replace('_', '-')}", str(value)]
        argparse_argv += [f"--{flag.dest}", str(value)]
    ctx = serve.make_context("serve", click_argv)
    from_click = {k: v for k, v in ctx.params.items() if k in values}
    from_argparse = argparse_overrides(container_parser.parse_args(argparse_argv))
    assert from_click == from_argparse == values


def test_unset_flags_leave_the_params_values(container_parser, tmp_path) -> None:
    from hairseg_serving.cli import serve
    from hairseg_serving.flags import argparse_overrides
    from hairseg_serving.settings import load_serve_config

    params = tmp_path / "params.yaml"
    params.write_text("serve:\n  max_instances: 3\n  access_log: false\n  default_tier: fast\n")
    ctx = serve.make_context("serve", ["--params", str(params)])
    options = {k: v for k, v in ctx.params.items() if k not in {"model_uri", "params_path"}}
    local = load_serve_config(params, **options)
    args = container_parser.parse_args(["--params", str(params)])
    container = load_serve_config(args.params, **argparse_overrides(args))
    for cfg in (local, container):
        assert (cfg.max_instances, cfg.access_log, cfg.default_tier) == (3, False, "fast")
    # What only the container sets: the pod's bind address and KServe's own port default.
    assert (local.host, container.host, container.port) == ("127.0.0.1", "0.0.0.0", 8080)
