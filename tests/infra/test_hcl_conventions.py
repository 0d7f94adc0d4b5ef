"""Static checks over the parsed HCL of every module and env (no provider needed).

These cover what `terraform validate` cannot check offline for the GCP, Azure
and platform code, whose providers are not in the local mirror: conventions,
the shared cluster output contract, the GPU pool shape and the env wiring.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
from tfhelpers import CLUSTER_MODULES, ENVS, MODULES, named_blocks, one, parse_dir

ALL_ROOTS = sorted([*MODULES.iterdir(), *ENVS.iterdir()])
REQUIRED_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")


def resources(directory: Path, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: body
        for block in parse_dir(directory).get("resource", [])
        for rtype, instances in block.items()
        if rtype == resource_type
        for name, body in instances.items()
    }


def terraform_block(directory: Path) -> dict[str, Any]:
    blocks = parse_dir(directory).get("terraform", [])
    assert len(blocks) == 1, f"{directory}: expected one terraform block, found {len(blocks)}"
    return blocks[0]


def required_providers(directory: Path) -> dict[str, dict[str, str]]:
    block = terraform_block(directory)
    providers: dict[str, dict[str, str]] = {}
    for entry in block.get("required_providers", []):
        for name, spec in entry.items():
            providers[name] = one(spec)
    return providers


def test_every_root_found() -> None:
    names = {p.relative_to(p.parents[1]).as_posix() for p in ALL_ROOTS}
    assert names == {
        "modules/aws-gpu-cluster",
        "modules/gcp-gpu-cluster",
        "modules/azure-gpu-cluster",
        "modules/ml-platform",
        "envs/aws",
        "envs/gcp",
        "envs/azure",
    }


@pytest.mark.parametrize("root", ALL_ROOTS, ids=lambda p: p.name)
def test_has_the_four_standard_files(root: Path) -> None:
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file()]
    assert not missing, f"{root} lacks {missing}"


@pytest.mark.parametrize("root", ALL_ROOTS, ids=lambda p: p.name)
def test_every_variable_has_type_and_description(root: Path) -> None:
    variables = named_blocks(root, "variable")
    assert variables, f"{root} declares no variables"
    for name, body in variables.items():
        assert "type" in body, f"{root.name}: variable {name} has no type"
        description = one(body.get("description", ""))
        assert isinstance(description, str) and len(description) > 10, (
            f"{root.name}: variable {name} needs a description"
        )


@pytest.mark.parametrize("root", ALL_ROOTS, ids=lambda p: p.name)
def test_every_output_has_description(root: Path) -> None:
    outputs = named_blocks(root, "output")
    assert outputs, f"{root} declares no outputs"
    for name, body in outputs.items():
        assert one(body.get("description", "")), f"{root.name}: output {name} has no description"


@pytest.mark.parametrize("root", ALL_ROOTS, ids=lambda p: p.name)
def test_versions_are_bounded(root: Path) -> None:
    required_version = one(terraform_block(root).get("required_version", ""))
    assert re.search(r">=\s*1\.\d+", required_version) and "<" in required_version, (
        f"{root.name}: required_version must have a lower and an upper bound, got {required_version!r}"
    )
    providers = required_providers(root)
    assert providers, f"{root.name}: no required_providers"
    for name, spec in providers.items():
        assert spec["source"].startswith("hashicorp/"), (
            f"{root.name}: {name} source {spec['source']}"
        )
        if root.parent == ENVS:
            # An env names the providers it configures; the bounds live once, in the
            # modules that use them, and Terraform applies them to the whole configuration.
            assert "version" not in spec, f"{root.name}: {name} bounds belong in its module"
            bounded_by = [m for m in env_modules(root) if name in required_providers(m)]
            assert bounded_by, f"{root.name}: no module it calls bounds provider {name}"
            continue
        version = spec.get("version", "")
        assert ">=" in version and "<" in version.replace(">=", ""), (
            f"{root.name}: provider {name} needs '>= x, < y', got {version!r}"
        )


def env_modules(env: Path) -> list[Path]:
    """The module folders an env root calls."""
    return [(env / one(m["source"])).resolve() for m in named_blocks(env, "module").values()]


def test_provider_sets_per_module() -> None:
    """The AWS module must init from an aws-only mirror; the platform must need no cloud."""
    assert set(required_providers(MODULES / "aws-gpu-cluster")) == {"aws"}
    assert set(required_providers(MODULES / "ml-platform")) == {"kubernetes", "helm"}
    assert set(required_providers(MODULES / "gcp-gpu-cluster")) == {"google", "random"}
    assert set(required_providers(MODULES / "azure-gpu-cluster")) == {"azurerm", "random"}


@pytest.mark.parametrize("root", ALL_ROOTS, ids=lambda p: p.name)
def test_no_provider_blocks_in_modules_and_no_registry_modules(root: Path) -> None:
    if root.parent == MODULES:
        assert "provider" not in parse_dir(root), (
            f"{root.name}: modules must not configure providers"
        )
    for name, body in named_blocks(root, "module").items():
        source = one(body["source"])
        assert source.startswith("../"), (
            f"{root.name}: module {name} uses non-local source {source}"
        )


def test_cluster_modules_export_identical_outputs() -> None:
    names = {m: set(named_blocks(MODULES / m, "output")) for m in CLUSTER_MODULES}
    reference = names["aws-gpu-cluster"]
    for module, outputs in names.items():
        assert outputs == reference, (
            f"{module} outputs differ from aws-gpu-cluster: "
            f"missing {sorted(reference - outputs)}, extra {sorted(outputs - reference)}"
        )
    for required in (
        "cluster_endpoint",
        "cluster_ca_certificate",
        "kubernetes_exec_auth",
        "gpu_node_selector",
        "gpu_tolerations",
        "artifact_bucket_uri",
        "container_registry_url",
        "workload_identities",
        "mlflow_database",
    ):
        assert required in reference


def gpu_pool(module: str) -> dict[str, Any]:
    resource_type = {
        "aws-gpu-cluster": "aws_eks_node_group",
        "gcp-gpu-cluster": "google_container_node_pool",
        "azure-gpu-cluster": "azurerm_kubernetes_cluster_node_pool",
    }[module]
    return resources(MODULES / module, resource_type)["gpu"]


@pytest.mark.parametrize("module", CLUSTER_MODULES)
def test_gpu_pool_scales_from_zero(module: str) -> None:
    pool = gpu_pool(module)
    if module == "aws-gpu-cluster":
        scaling = one(pool["scaling_config"])
        assert one(scaling["min_size"]) == 0 and one(scaling["desired_size"]) == 0
        assert one(scaling["max_size"]) == "${var.gpu_max_nodes}"
    elif module == "gcp-gpu-cluster":
        scaling = one(pool["autoscaling"])
        assert one(scaling["total_min_node_count"]) == 0
        assert one(scaling["total_max_node_count"]) == "${var.gpu_max_nodes}"
    else:
        assert one(pool["auto_scaling_enabled"]) is True
        assert one(pool["min_count"]) == 0 and one(pool["node_count"]) == 0
        assert one(pool["max_count"]) == "${var.gpu_max_nodes}"


@pytest.mark.parametrize("module", CLUSTER_MODULES)
def test_gpu_pool_has_spot_toggle(module: str) -> None:
    variable = named_blocks(MODULES / module, "variable")["gpu_spot"]
    assert one(variable["type"]) == "${bool}" and one(variable["default"]) is False
    pool = gpu_pool(module)
    spot_attr = {
        "aws-gpu-cluster": lambda p: one(p["capacity_type"]),
        "gcp-gpu-cluster": lambda p: one(one(p["node_config"])["spot"]),
        "azure-gpu-cluster": lambda p: one(p["priority"]),
    }[module](pool)
    assert "var.gpu_spot" in spot_attr, f"{module}: GPU pool ignores gpu_spot ({spot_attr})"


@pytest.mark.parametrize("module", CLUSTER_MODULES)
def test_gpu_pool_is_tainted(module: str) -> None:
    pool = gpu_pool(module)
    if module == "aws-gpu-cluster":
        taint = one(pool["taint"])
    elif module == "gcp-gpu-cluster":
        taint = one(one(pool["node_config"])["taint"])
    else:
        taint = one(pool["node_taints"])
    assert "local.gpu_taint" in str(taint), (
        f"{module}: GPU pool is not given the GPU taint: {taint}"
    )
    if module != "azure-gpu-cluster":
        assert one(taint["effect"]) == "NO_SCHEDULE"


@pytest.mark.parametrize("module", CLUSTER_MODULES)
def test_system_pool_is_not_tainted(module: str) -> None:
    blob = str(parse_dir(MODULES / module)["resource"])
    # The only taint blocks/lists in the module belong to the GPU pool.
    assert blob.count("gpu_taint") >= 1
    system = {
        "aws-gpu-cluster": lambda: resources(MODULES / module, "aws_eks_node_group")["system"],
        "gcp-gpu-cluster": lambda: resources(MODULES / module, "google_container_node_pool")[
            "system"
        ],
        "azure-gpu-cluster": lambda: one(
            resources(MODULES / module, "azurerm_kubernetes_cluster")["this"]["default_node_pool"]
        ),
    }[module]()
    assert "taint" not in str(system)


@pytest.mark.parametrize("root", ALL_ROOTS, ids=lambda p: p.name)
def test_no_open_world_defaults(root: Path) -> None:
    for name, body in named_blocks(root, "variable").items():
        assert "0.0.0.0/0" not in str(body.get("default", "")), (
            f"{root.name}: {name} defaults to 0.0.0.0/0"
        )


def test_helm_charts_are_pinned_by_variables() -> None:
    """Every chart's version comes from the one ``versions`` object, whose defaults pin it."""
    platform = MODULES / "ml-platform"
    versions_type = one(named_blocks(platform, "variable")["versions"]["type"])
    pinned = dict(re.findall(r"'(\w+)': '\$\{optional\(string,\s*\"([^\"]+)\"\)\}'", versions_type))
    assert len(pinned) == len(object_attributes(versions_type)), versions_type
    releases = resources(platform, "helm_release")
    assert {"cert_manager", "knative_operator", "kserve_crd", "kserve", "mlflow", "redis"} <= set(
        releases
    )
    for name, body in releases.items():
        if one(body["chart"]).startswith("${path.module}"):
            continue  # the local KnativeServing wrapper chart
        version = one(body.get("version", ""))
        match = re.fullmatch(r"\$\{var\.versions\.(\w+)\}", version)
        assert match, (
            f"helm_release.{name} must take its version from var.versions, got {version!r}"
        )
        assert re.match(r"v?\d+\.\d+\.\d+$", pinned[match.group(1)])
    assert re.match(r"2\.\d+\.\d+$", pinned["kubeflow_pipelines"])


def test_kserve_runs_serverless_and_device_plugin_tolerates_gpu_taint() -> None:
    releases = resources(MODULES / "ml-platform", "helm_release")
    assert re.search(r"deploymentMode\W+Serverless", str(releases["kserve"]["values"]))
    assert "var.cluster.gpu_tolerations" in str(releases["nvidia_device_plugin"]["values"])


def object_attributes(type_expr: str) -> set[str]:
    """The top-level attribute names of an ``object({...})`` type as python-hcl2 prints it."""
    names, depth = set(), 0
    for match in re.finditer(r"[({]|[)}]|'(\w+)': ", type_expr):
        token = match.group(0)
        if token in "({":
            depth += 1
        elif token in ")}":
            depth -= 1
        elif depth == 3:  # inside ${, object( and its {
            names.add(match.group(1))
    return names


@pytest.mark.parametrize("env", sorted(ENVS.iterdir()), ids=lambda p: p.name)
def test_env_wiring_matches_module_interfaces(env: Path) -> None:
    """Every module.cluster.X the env passes exists; every required platform input is set."""
    modules = named_blocks(env, "module")
    cluster_source = (env / one(modules["cluster"]["source"])).resolve()
    cluster_outputs = set(named_blocks(cluster_source, "output"))
    platform_source = (env / one(modules["platform"]["source"])).resolve()
    platform_vars = named_blocks(platform_source, "variable")

    platform_args = {k: one(v) for k, v in modules["platform"].items() if not k.startswith("__")}
    referenced = set(re.findall(r"module\.cluster\.(\w+)", str(parse_dir(env))))
    assert referenced <= cluster_outputs, f"unknown cluster outputs: {referenced - cluster_outputs}"
    from_platform = set(re.findall(r"module\.platform\.(\w+)", str(parse_dir(env))))
    platform_outputs = set(named_blocks(platform_source, "output"))
    assert "gpu_scheduling" in from_platform
    assert from_platform <= platform_outputs, f"unknown outputs {from_platform - platform_outputs}"
    # The platform takes the cluster module whole; every attribute its `cluster` object
    # type names must be a cluster output (Terraform drops the outputs it does not name).
    assert platform_args["cluster"] == "${module.cluster}"
    wanted = object_attributes(one(platform_vars["cluster"]["type"]))
    assert {"cloud", "gpu_tolerations", "mlflow_database_password"} <= wanted
    assert wanted <= cluster_outputs, f"platform wants cluster outputs {wanted - cluster_outputs}"

    required = {name for name, body in platform_vars.items() if "default" not in body}
    assert required <= set(platform_args), (
        f"platform inputs not set: {required - set(platform_args)}"
    )
    unknown = set(platform_args) - set(platform_vars) - {"source", "depends_on", "providers"}
    assert not unknown, f"platform has no variables {unknown}"

    cluster_args = {k for k in modules["cluster"] if not k.startswith("__")} - {"source"}
    cluster_vars = named_blocks(cluster_source, "variable")
    assert cluster_args <= set(cluster_vars), (
        f"cluster has no variables {cluster_args - set(cluster_vars)}"
    )
    required_cluster = {name for name, body in cluster_vars.items() if "default" not in body}
    assert required_cluster <= cluster_args, (
        f"cluster inputs not set: {required_cluster - cluster_args}"
    )


@pytest.mark.parametrize("env", sorted(ENVS.iterdir()), ids=lambda p: p.name)
def test_env_example_tfvars_and_readme(env: Path) -> None:
    example = env / "terraform.tfvars.example"
    assert example.is_file()
    declared = set(named_blocks(env, "variable"))
    set_in_example = set(hcl2.loads(example.read_text()))
    assert set_in_example <= declared, f"example sets undeclared {set_in_example - declared}"
    required = {n for n, b in named_blocks(env, "variable").items() if "default" not in b}
    assert required <= set_in_example, f"example lacks required {required - set_in_example}"

    readme = (env / "README.md").read_text()
    for command in ("terraform init", "terraform plan", "terraform apply", "terraform destroy"):
        assert command in readme, f"{env.name}/README.md does not show `{command}`"
    for topic in ("finalizer", "loadbalancer", "pvc", "kfp_ui", "mlflow", "kserve_ingress"):
        assert topic in readme.lower(), f"{env.name}/README.md does not cover {topic}"
    assert "backend" in (env / "versions.tf").read_text()


def test_aws_module_has_terraform_tests() -> None:
    tests = list((MODULES / "aws-gpu-cluster" / "tests").glob("*.tftest.hcl"))
    assert tests
    text = "\n".join(t.read_text() for t in tests)
    assert 'mock_provider "aws"' in text and "command = plan" in text


SHARED_ENV_FILES = {"platform.tf": "platform.tf", "outputs.tf": "outputs.tf",
                    "variables_shared.tf": "variables.tf"}  # fmt: skip


@pytest.mark.parametrize("env", sorted(ENVS.iterdir()), ids=lambda p: p.name)
def test_env_roots_link_the_shared_wiring(env: Path) -> None:
    """The platform wiring, the outputs and the common inputs are one file each in
    infra/terraform/shared/, linked (not copied) into every env root; the env supplies
    what the shared files leave to it and does not redeclare a shared input."""
    shared = ENVS.parent / "shared"
    for name, target in SHARED_ENV_FILES.items():
        link = env / name
        assert link.is_symlink(), f"{link} should link to ../../shared/{target}"
        assert link.resolve() == (shared / target).resolve(), f"{link} -> {link.resolve()}"
    own = hcl2.loads((env / "variables.tf").read_text())
    shared_vars = hcl2.loads((shared / "variables.tf").read_text())
    own_names = {n for block in own.get("variable", []) for n in block}
    shared_names = {n for block in shared_vars.get("variable", []) for n in block}
    assert not own_names & shared_names, f"{env.name} redeclares {own_names & shared_names}"
    local_names = {n for block in parse_dir(env).get("locals", []) for n in block}
    needed = set(re.findall(r"local\.(\w+)", (shared / "platform.tf").read_text()))
    assert needed <= local_names, f"{env.name} does not define locals {needed - local_names}"
    assert {"cluster", "platform"} <= set(named_blocks(env, "module"))
