"""``hairseg rollout``: canary rollout of the candidate, then promotion or rollback.

    hairseg rollout                                  # local backend, models:/hairseg@candidate
    hairseg rollout --backend kserve --namespace hairseg --name hairseg
    hairseg rollout --abort                          # roll back an interrupted rollout
    hairseg rollout --status                         # show the persisted rollout state

Exit codes: 0 promoted / nothing to roll out / aborted cleanly, 3 rolled back, 4 rejected by
the pre-traffic gate (never got traffic), 1 failure, 2 bad input.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import click

from hairseg.cli.options import params_option, path_option, resolve_tracking_uri, tracking_option

__all__ = ["rollout"]


@click.command("rollout", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--backend",
    type=click.Choice(["local", "kserve"]),
    default=None,
    help="local: loopback servers + replayed traffic; kserve: the cluster [params rollout.backend].",
)
@click.option(
    "--candidate",
    "candidate_uri",
    default="models:/hairseg@candidate",
    show_default=True,
    help="The version to roll out: models:/hairseg@ALIAS or models:/hairseg/N.",
)
@path_option(
    "--dataset",
    "dataset",
    "data",
    help="Dataset whose split is replayed (local) or mirrored (kserve).",
    kind="dir",
)
@params_option(help="params.yaml with the rollout: section.")
@tracking_option()
@path_option("--reports-dir", "reports_dir", "reports/rollout", kind="dir")
@path_option(
    "--state",
    "state_path",
    ".hairseg/rollout_state.json",
    help="Local backend: where rollout state and the route table persist.",
    kind="file",
)
@click.option("--namespace", default=None, help="kserve: namespace [params rollout.kserve].")
@click.option("--name", default=None, help="kserve: InferenceService name [params].")
@click.option("--prometheus-url", default=None, help="kserve: Prometheus base URL [params].")
@click.option("--kube-context", default=None, help="kserve: kubeconfig context.")
@click.option("--abort", is_flag=True, help="Roll back an in-flight rollout and stop.")
@click.option("--status", "show_status", is_flag=True, help="Print the persisted state and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result record as JSON.")
@click.option(
    "--fail-on-rollback/--no-fail-on-rollback",
    default=True,
    show_default=True,
    help="Exit 3 (rolled back) / 4 (rejected); --no-fail-on-rollback exits 0 (the record says).",
)
@path_option(
    "--metrics-out",
    "metrics_out",
    None,
    help="Also write a small metrics JSON (outcome, versions, steps) for DVC.",
    kind="file",
)
def rollout(
    backend: str | None,
    candidate_uri: str,
    dataset: Path,
    params_path: Path,
    tracking_uri: str | None,
    reports_dir: Path,
    state_path: Path,
    namespace: str | None,
    name: str | None,
    prometheus_url: str | None,
    kube_context: str | None,
    abort: bool,
    show_status: bool,
    as_json: bool,
    fail_on_rollback: bool,
    metrics_out: Path | None,
) -> None:
    """Canary-roll the candidate out; promote it to champion or roll it back.

    Exit codes: 0 promoted, nothing to roll out, or aborted cleanly; 3 rolled back;
    4 rejected by the pre-traffic gate; 1 failure; 2 bad input. Run it again after an
    interruption to resume (same candidate) or pass --abort to roll back.
    """
    from hairseg.config import load_params
    from hairseg.rollout.config import load_rollout_config
    from hairseg.stages.rollout import rollout_stage, rollout_status

    logging.getLogger("httpx").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per event
    params = load_params(params_path) if params_path.is_file() else {}
    cfg = load_rollout_config(params)
    kserve_overrides = {
        k: v
        for k, v in {"namespace": namespace, "name": name, "prometheus_url": prometheus_url}.items()
        if v is not None
    }
    cfg = dataclasses.replace(
        cfg,
        backend=backend or cfg.backend,
        kserve=dataclasses.replace(cfg.kserve, **kserve_overrides),
    )
    where = {
        "tracking_uri": resolve_tracking_uri(tracking_uri),
        "dataset": dataset,
        "state_path": state_path,
        "cache_dir": Path(".hairseg") / "rollout" / "models",
        "kube_context": kube_context,
    }
    if show_status:
        state = rollout_status(cfg, **where)
        click.echo(json.dumps(state, indent=2, sort_keys=True) if state else "no rollout state")
        return
    result = rollout_stage(
        cfg, candidate_uri=candidate_uri, reports_dir=reports_dir, abort=abort, **where
    )
    if as_json:
        click.echo(json.dumps(result.record, indent=2, sort_keys=True, default=str))
    click.echo(
        result.summary() + (f" — record: {result.record_path}" if result.record_path else "")
    )
    if metrics_out is not None:
        from hairseg.jsonio import write_json_atomic

        write_json_atomic(metrics_out, result.metrics())
    if result.exit_code and fail_on_rollback:
        sys.exit(result.exit_code)  # rolled back (3) / rejected (4): not errors, but not shipped
