"""Data components: make the dataset (DVC stage ``data``) and validate it (stage ``validate``)."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from hairseg_components.image import BASE_IMAGE

__all__ = ["generate_data"]


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False, packages_to_install=[])
def generate_data(data_params: dict, dataset: Output[Dataset]) -> None:
    """Render the seeded demo dataset (``hairseg.data.generate.generate_dataset``) into a
    ``Dataset`` artifact whose path is the dataset folder (images/, masks/, manifest.parquet)."""
    from hairseg.data.generate import DataParams, generate_dataset
    from hairseg_components.runtime import stage_config

    cfg = stage_config("data", data_params, DataParams)
    result = generate_dataset(dataset.path, cfg, overwrite=True)
    dataset.metadata.update(
        {
            "format": "hairseg-dataset",
            "source": "demo",
            "manifest_sha256": result.manifest_sha256,
            "image_size": cfg.image_size,
            **{f"n_{split}": n for split, n in result.counts.items()},
        }
    )
