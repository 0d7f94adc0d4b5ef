"""The ``hairseg`` command line: the only place (with the KFP/KServe wrappers) that reads
argv, environment variables and files named by the user.

Sub-commands live in their own modules and are imported only when invoked, so
``hairseg --help`` stays fast and a command never pays for another's heavy imports.
The core's commands are listed in :data:`COMMANDS`; the doors (``hairseg pipeline`` from
``hairseg_pipelines``, ``hairseg serve`` from ``hairseg_serving``) register theirs as entry
points in the ``hairseg.commands`` group (pyproject.toml), so this package imports no door.
A door that is registered but cannot be imported is listed as unavailable, with the reason.
Errors become one readable line and a non-zero exit code, never a traceback (unless
``--log-level debug``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import sys

import click

from hairseg import __version__
from hairseg.errors import EXIT_FAILURE, HairsegError

__all__ = ["DOOR_GROUP", "cli", "main"]

# Entry-point group through which the door packages add their sub-commands.
DOOR_GROUP = "hairseg.commands"

# name -> (module, attribute, one-line help). Modules that do not exist yet are not listed.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("hairseg.cli.data", "data", "Generate, import, fetch and validate datasets."),
    "models": ("hairseg.cli.models", "models", "Fetch the MediaPipe task models."),
    "train": ("hairseg.cli.lifecycle", "train", "Fine-tune the segmentation network."),
    "quantize": ("hairseg.cli.lifecycle", "quantize", "Export to ONNX and quantize to int8."),
    "evaluate": ("hairseg.cli.lifecycle", "evaluate", "Evaluate candidate vs champion."),
    "gate": ("hairseg.cli.lifecycle", "gate", "Apply the promotion gate."),
    "register": ("hairseg.cli.lifecycle", "register", "Register the model in MLflow."),
    "features": ("hairseg.cli.features", "features", "Feast feature repo: apply, materialize."),
    "monitor": ("hairseg.cli.monitor", "monitor", "Drift monitoring with Evidently."),
    "predict": ("hairseg.cli.batch", "predict", "Batch prediction over a folder, glob or bucket."),
    "rollout": ("hairseg.cli.rollout", "rollout", "Canary rollout: promote or roll back."),
}

LOG_LEVELS = ["debug", "info", "warning", "error"]


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use: the core's from
    :data:`COMMANDS`, the doors' from the :data:`DOOR_GROUP` entry points."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        core = {name for name, (mod, _, _) in COMMANDS.items() if _module_exists(mod)}
        return sorted(core | set(_door_entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr, _ = COMMANDS[cmd_name]
            if not _module_exists(module_name):
                return None
            return getattr(importlib.import_module(module_name), attr)
        entry_point = _door_entry_points().get(cmd_name)
        if entry_point is None:
            return None
        command, error = _load_door(entry_point)
        return command or _unavailable(cmd_name, entry_point, error)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        doors = _door_entry_points()
        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, COMMANDS[name][2]))
                continue
            command, error = _load_door(doors[name])
            help_text = command.get_short_help_str(200) if command else f"(unavailable: {error})"
            rows.append((name, help_text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _door_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Sub-command name -> entry point, for the commands the door packages register."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=DOOR_GROUP)}


def _load_door(entry_point: importlib.metadata.EntryPoint) -> tuple[click.Command | None, str]:
    """The door's click command, or ``None`` and why it could not be loaded."""
    try:
        command = entry_point.load()
    except Exception as exc:  # a missing or broken door must not break the other commands
        return None, f"{entry_point.value} does not import: {type(exc).__name__}: {exc}"
    if not isinstance(command, click.Command):
        return None, f"{entry_point.value} is a {type(command).__name__}, not a click command"
    return command, ""


def _unavailable(
    name: str, entry_point: importlib.metadata.EntryPoint, error: str
) -> click.Command:
    """A stand-in whose invocation fails in one line saying which door is missing."""

    def fail() -> None:
        package = entry_point.value.partition(":")[0].partition(".")[0]
        raise HairsegError(
            f"'hairseg {name}' is provided by the {package} package, which is unavailable: {error}"
        )

    return click.Command(
        name,
        callback=fail,
        help=f"(unavailable: {error})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hairseg")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    envvar="HAIRSEG_LOG_LEVEL",
    help="Logging verbosity; 'debug' also shows tracebacks on errors.",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str) -> None:
    """hairseg: hair segmentation and try-on, from data to canary rollout."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.ensure_object(dict)["log_level"] = log_level.lower()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn errors into one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="hairseg", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("hairseg: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HairsegError as exc:
        click.echo(f"hairseg: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("hairseg: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        click.echo(
            f"hairseg: error: {type(exc).__name__}: {exc} (use --log-level debug for details)",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
