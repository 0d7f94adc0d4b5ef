"""The ``hairseg`` command line: the only place (with the KFP/KServe wrappers) that reads
argv, environment variables and files named by the user.

Sub-commands live in their own modules and are imported only when invoked, so
``hairseg --help`` stays fast and a command never pays for another's heavy imports.
Errors become one readable line and a non-zero exit code, never a traceback (unless
``--log-level debug``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from hairseg import __version__
from hairseg.errors import EXIT_FAILURE, HairsegError

__all__ = ["cli", "main"]

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
    "serve": ("hairseg.cli.serve", "serve", "Serve the model with KServe on loopback."),
    "rollout": ("hairseg.cli.rollout", "rollout", "Canary rollout: promote or roll back."),
    "pipeline": ("hairseg.cli.pipeline", "pipeline", "Compile, upload and run the KFP pipeline."),
}

LOG_LEVELS = ["debug", "info", "warning", "error"]


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (mod, _, _) in COMMANDS.items() if _module_exists(mod))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        if not _module_exists(module_name):
            return None
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


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
