"""The pipeline of test_stores.py's KFP test, apart: kfp reads a component's and a
pipeline's annotations as types, so they cannot live in a module with
``from __future__ import annotations``."""

__all__ = ["stores_pipeline"]


def stores_pipeline(params: dict):
    """A two-step pipeline over the real components (their public signatures only): a test
    step hands over the inputs a training run would have made, then ``build_features``
    (cluster Feast config) and ``register_model`` run as kfp.local subprocesses."""
    from hairseg_components.features import build_features
    from hairseg_components.lifecycle import register_model
    from kfp import dsl
    from kfp.dsl import Artifact, Dataset, Model, Output

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def hand_over(
        src: str,
        image_stats: Output[Dataset],
        dataset: Output[Dataset],
        onnx_model: Output[Model],
        evaluation: Output[Artifact],
        gate_result: Output[Artifact],
        train_files: Output[Artifact],
    ):
        import os
        import shutil

        shutil.copyfile(os.path.join(src, "image_stats.parquet"), image_stats.path)
        for name, art in [("data", dataset), ("models", onnx_model), ("eval", evaluation),
                          ("gate", gate_result), ("train", train_files)]:  # fmt: skip
            shutil.copytree(os.path.join(src, name), art.path)

    @dsl.pipeline(name="hairseg-stores-test")
    def pipeline(src: str, feast_repo: str, tracking_uri: str) -> str:
        given = hand_over(src=src)
        build_features(
            image_stats=given.outputs["image_stats"],
            features_params=params["features"],
            feast_repo=feast_repo,
            feast_config="feature_store.cluster.yaml",
        )
        registered = register_model(
            dataset=given.outputs["dataset"],
            onnx_model=given.outputs["onnx_model"],
            evaluation=given.outputs["evaluation"],
            gate_result=given.outputs["gate_result"],
            train_files=given.outputs["train_files"],
            model_params=params["model"], train_params=params["train"],
            quantize_params=params["quantize"],
            register_params=params["register"], mlflow_tracking_uri=tracking_uri,
            git_commit="0123abc", pipeline_name="hairseg-stores-test",
            pipeline_version="t1", pipeline_run_id="kfp-local-stores",
        )  # fmt: skip
        return registered.outputs["Output"]

    return pipeline
