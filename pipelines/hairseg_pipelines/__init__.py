"""KFP v2 pipelines for hairseg: ``hairseg-training`` and ``hairseg-drift``, their
deterministic compilation, local runs with ``kfp.local`` and the KFP API glue behind
``hairseg pipeline``. Only this package and ``hairseg_components`` import ``kfp``."""
