"""The stage layer: one typed function per pipeline stage, shared by every door.

A stage takes paths, typed configs (the ``params.yaml`` dataclasses built with
:func:`hairseg.config.section`) and the MLflow tracking URI, does the orchestration
(champion resolution, MLflow runs, lineage, metrics files, the model card) and returns a
result dataclass. The CLI (and so ``dvc repro``) and the KFP components call the same
functions, so a change here changes every path at once. Modules import heavy libraries
inside the functions; importing :mod:`hairseg.stages` is cheap.

- :mod:`hairseg.stages.lifecycle`: train, quantize, evaluate, gate, register.
"""
