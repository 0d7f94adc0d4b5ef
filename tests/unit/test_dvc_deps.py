"""Every ``dvc.yaml`` stage depends on the code its ``cmd`` runs, so editing it re-runs the stage.

The code of a stage is derived from its command, not listed by hand: ``hairseg NAME ...``
runs the CLI module that :data:`hairseg.cli.COMMANDS` (or a door's ``hairseg.commands``
entry point) names for ``NAME``, plus every :mod:`hairseg.stages` module that module imports,
directly or through another stage module (read with ``ast``, nothing imported). A dep that
is a folder covers the files under it. Source paths named in deps must exist (a missing dep
stops ``dvc repro``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import shlex
from pathlib import Path

import pytest
import yaml

from hairseg.cli import COMMANDS, DOOR_GROUP, cli

REPO = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
# Where each package's source lives in this checkout.
SOURCE_ROOTS = {
    "hairseg": REPO / "src" / "hairseg",
    "hairseg_components": REPO / "components" / "hairseg_components",
    "hairseg_pipelines": REPO / "pipelines" / "hairseg_pipelines",
    "hairseg_serving": REPO / "serving" / "hairseg_serving",
}


def module_file(module: str) -> Path:
    """The source file of ``module`` in this checkout (``pkg/__init__.py`` for a package)."""
    top, _, rest = module.partition(".")
    base = SOURCE_ROOTS[top].joinpath(*rest.split(".")) if rest else SOURCE_ROOTS[top]
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def command_module(cmd: str) -> str:
    """The module behind ``hairseg NAME ...`` (the first word after ``hairseg``'s own options)."""
    words = shlex.split(cmd)
    assert words[0] == "hairseg", f"a stage runs the hairseg CLI, not {words[0]!r}: {cmd}"
    takes_value = {o for p in cli.params if not getattr(p, "is_flag", True) for o in p.opts}
    rest = iter(words[1:])
    for word in rest:
        if word in takes_value:
            next(rest)  # the option's value
        elif not word.startswith("-"):
            name = word
            break
    else:
        raise AssertionError(f"{cmd!r} names no hairseg command")
    if name in COMMANDS:
        return COMMANDS[name][0]
    doors = {ep.name: ep.module for ep in importlib.metadata.entry_points(group=DOOR_GROUP)}
    assert name in doors, f"{cmd!r}: no hairseg command {name!r}"
    return doors[name]


def imported_stage_modules(path: Path) -> set[str]:
    """``hairseg.stages`` modules imported anywhere in the file (function bodies included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if (
                name.startswith("hairseg.stages.") and module_file(name).is_file()
            ) or name == "hairseg.stages":
                found.add(name)
    return found


def stage_code(cmd: str) -> set[Path]:
    """The files a stage's command runs: its CLI module and the stage modules it reaches."""
    files: set[Path] = set()
    todo, seen = {command_module(cmd)}, set()
    while todo:
        module = todo.pop()
        seen.add(module)
        path = module_file(module)
        files.add(path)
        if path.is_file():
            todo |= imported_stage_modules(path) - seen
    return files


def stage_deps(stage: dict) -> list[str]:
    return [next(iter(d)) if isinstance(d, dict) else d for d in stage.get("deps", [])]


def missing_code_deps(stage: dict) -> list[str]:
    """The code the stage's command runs that no dep covers (a folder dep covers its files)."""
    deps = [REPO / d for d in stage_deps(stage)]
    return sorted(
        str(path.relative_to(REPO))
        for path in stage_code(stage["cmd"])
        if not any(path == d or d in path.parents for d in deps)
    )


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_name_the_code_its_command_runs(name: str) -> None:
    stage = STAGES[name]
    missing = missing_code_deps(stage)
    assert not missing, f"dvc.yaml stage {name!r} runs {missing} but does not list it in deps"
    for dep in stage_deps(stage):
        if dep.startswith(("src/", "serving/", "pipelines/", "components/")):
            assert (REPO / dep).exists(), f"stage {name!r}: dep {dep} does not exist"


def test_a_stage_without_its_cli_module_or_stage_layer_fails(tmp_path) -> None:
    train = STAGES["train"]
    assert module_file("hairseg.cli.lifecycle") in stage_code(train["cmd"])
    without_cli = [d for d in train["deps"] if d != "src/hairseg/cli/lifecycle.py"]
    assert missing_code_deps({**train, "deps": without_cli}) == ["src/hairseg/cli/lifecycle.py"]
    # A command module that imports the stage layer (in a function body too) needs it in deps.
    cli_module = tmp_path / "cli_module.py"
    cli_module.write_text("def train():\n    from hairseg.stages import lifecycle\n")
    assert "hairseg.stages" in imported_stage_modules(cli_module)
    assert (
        command_module("hairseg --log-level debug rollout --dataset data") == "hairseg.cli.rollout"
    )
    assert command_module("hairseg serve --port 1") == "hairseg_serving.cli"


def test_dvc_lock_and_yaml_are_not_git_ignored() -> None:
    """DVC refuses to run (``'dvc.lock' is git-ignored``) when git ignores its lock, so a
    `.gitignore` entry for it breaks `make run` while every test in a temp copy passes."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "dvc.lock", "dvc.yaml", "data.dvc"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ignored.returncode == 1, f"git ignores: {ignored.stdout.split()}"
