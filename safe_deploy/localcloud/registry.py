"""The SageMaker model registry for the local cloud, as SageMaker documents it.

moto 5.2.5 stores model package groups and versioned model packages, but differs from SageMaker
where the pipeline relies on the registry. Here, in one place:

- ``UpdateModelPackage`` changes only what the call names: it merges
  ``CustomerMetadataProperties`` into the package's and removes the keys of
  ``CustomerMetadataPropertiesToRemove`` (moto replaces the properties wholesale and clears the
  approval status and description a call leaves out);
- the documented limits hold: metadata of at most 50 entries, keys up to 128 characters and
  values up to 256 in its character set, descriptions up to 1024, a group name's pattern;
- ``CreateModelPackage`` takes the group by name or ARN, a versioned package starts
  ``PendingManualApproval``, and ``CreateModelPackageGroup`` refuses a name that exists;
- ``ListModelPackages`` answers summaries, as SageMaker does: a package's metadata, metrics and
  inference specification come from ``DescribeModelPackage`` only;
- ``CreateModel`` refuses a name that exists (moto replaces the model), and deploys a versioned
  package only when it is ``Approved`` ("For versioned models, the value of this parameter must
  be set to Approved to deploy the model", CreateModelPackage's ``ModelApprovalStatus``).

The character sets come from botocore's service model (the patterns SageMaker publishes), read
here rather than copied.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.session import get_session
from moto.core.responses import ActionResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter, validate_model_approval_status

from safe_deploy.localcloud.patching import replace

_create_group = SageMakerModelBackend.create_model_package_group
_create_package = SageMakerModelBackend.create_model_package
_create_model = SageMakerModelBackend.create_model

APPROVED = "Approved"
PENDING = "PendingManualApproval"


# ---------------------------------------------------------------------------- documented limits
@functools.cache
def _shape(name: str) -> Any:
    return get_session().get_service_model("sagemaker").shape_for(name)


@functools.cache
def character_class(pattern: str) -> tuple[frozenset[str], frozenset[str]]:
    """The first ``[...]`` class of a SageMaker pattern as (Unicode categories, characters):
    ``[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@]`` is categories L, Z, N and ``_.:/=+-@``."""
    match = re.search(r"\[((?:\\.|[^\]])*)\]", pattern)
    if match is None:
        raise ValueError(f"no character class in {pattern!r}")
    body = match.group(1)
    categories = frozenset(re.findall(r"\\p\{(\w)\}", body))
    rest = re.sub(r"\\p\{\w\}", "", body)
    characters = frozenset(re.sub(r"\\(.)", r"\1", rest))
    return categories, characters


def _matches(text: str, pattern: str) -> bool:
    """Whether SageMaker's (Java) pattern takes ``text``: one with Unicode classes is a class of
    allowed characters, repeated; any other Python's ``re`` reads as Java does."""
    if "\\p{" not in pattern:
        return re.fullmatch(pattern, text) is not None
    categories, characters = character_class(pattern)
    return all(unicodedata.category(c)[0] in categories or c in characters for c in text)


def _limited(value: str, shape: Any, what: str) -> None:
    """SageMaker's length and pattern constraints of one string shape, with its message."""
    metadata = shape.metadata
    problems = []
    if len(value) < metadata.get("min", 0):
        problems.append(f"Member must have length greater than or equal to {metadata['min']}")
    if "max" in metadata and len(value) > metadata["max"]:
        problems.append(f"Member must have length less than or equal to {metadata['max']}")
    pattern = metadata.get("pattern")
    if pattern and not _matches(value, pattern):
        problems.append(f"Member must satisfy regular expression pattern: {pattern}")
    if problems:
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at '{what}' failed to satisfy "
            f"constraint: {', '.join(problems)}"
        )


def check_metadata(properties: Mapping[str, Any] | None) -> None:
    """``CustomerMetadataProperties`` as SageMaker takes them (the CustomerMetadataMap shape)."""
    if not properties:
        return
    shape = _shape("CustomerMetadataMap")
    if len(properties) > shape.metadata["max"]:
        raise ValidationError(
            f"1 validation error detected: Value at 'customerMetadataProperties' failed to "
            f"satisfy constraint: Member must have length less than or equal to "
            f"{shape.metadata['max']} ({len(properties)} entries)"
        )
    for key, value in properties.items():
        if not isinstance(value, str):
            raise ValidationError(
                f"Value of customerMetadataProperties key '{key}' must be a string, not "
                f"{type(value).__name__}"
            )
        _limited(str(key), shape.key, "customerMetadataProperties (key)")
        _limited(value, shape.value, f"customerMetadataProperties.{key}")


def _check_text(value: str | None, shape_name: str, what: str) -> None:
    if value is not None:
        _limited(value, _shape(shape_name), what)


def _group_name(name_or_arn: str) -> str:
    """SageMaker takes a group's name or its ARN."""
    return name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


# ---------------------------------------------------------------------------- groups and packages
def create_model_package_group(
    self: Any,
    model_package_group_name: str,
    model_package_group_description: str,
    tags: list[dict[str, str]] | None = None,
) -> str:
    _check_text(model_package_group_name, "EntityName", "modelPackageGroupName")
    _check_text(
        model_package_group_description, "EntityDescription", "modelPackageGroupDescription"
    )
    if model_package_group_name in self.model_package_groups:
        arn = self.model_package_groups[model_package_group_name].arn
        raise ValidationError(f"Model Package Group already exists: {arn}")
    created: str = _create_group(
        self, model_package_group_name, model_package_group_description, tags
    )
    return created


def create_model_package(self: Any, **kwargs: Any) -> str:
    group = kwargs.get("model_package_group_name")
    if group:
        kwargs["model_package_group_name"] = _group_name(group)
        if kwargs.get("model_approval_status") is None:
            kwargs["model_approval_status"] = PENDING
    _check_text(
        kwargs.get("model_package_description"), "EntityDescription", "modelPackageDescription"
    )
    check_metadata(kwargs.get("customer_metadata_properties"))
    arn: str = _create_package(self, **kwargs)
    package = self.model_packages[arn]
    package.customer_metadata_properties = (
        dict(kwargs.get("customer_metadata_properties") or {}) or None
    )
    return arn


def update_model_package(
    self: Any,
    model_package_arn: str,
    model_approval_status: str | None,
    approval_description: str | None,
    customer_metadata_properties: Mapping[str, str] | None,
    customer_metadata_properties_to_remove: Iterable[str] | None,
    additional_inference_specifications_to_add: list[Any] | None,
) -> str:
    """What the call names changes; everything else stays as it was."""
    package = self.model_packages.get(
        self.model_package_name_mapping.get(model_package_arn, model_package_arn)
    )
    if package is None:
        raise ValidationError(f"Model package {model_package_arn} not found")
    validate_model_approval_status(model_approval_status)
    _check_text(approval_description, "ApprovalDescription", "approvalDescription")
    merged = dict(package.customer_metadata_properties or {})
    merged.update(customer_metadata_properties or {})
    for key in customer_metadata_properties_to_remove or []:
        merged.pop(key, None)
    check_metadata(customer_metadata_properties)
    check_metadata(merged)
    if model_approval_status is not None:
        package.set_model_approval_status(model_approval_status)
    if approval_description is not None:
        package.approval_description = approval_description
    package.customer_metadata_properties = merged or None
    if additional_inference_specifications_to_add:
        package.add_additional_inference_specifications(additional_inference_specifications_to_add)
    package.modifications_done()
    return str(package.arn)


@functools.cache
def _summary_fields() -> frozenset[str]:
    return frozenset(_shape("ModelPackageSummary").members)


def list_model_packages(response: Any) -> ActionResult:
    """ListModelPackages with SageMaker's summaries (moto answers whole packages)."""
    group = response._get_param("ModelPackageGroupName")
    packages, next_token = response.sagemaker_backend.list_model_packages(
        creation_time_after=response._get_param("CreationTimeAfter"),
        creation_time_before=response._get_param("CreationTimeBefore"),
        max_results=response._get_param("MaxResults"),
        name_contains=response._get_param("NameContains"),
        model_approval_status=response._get_param("ModelApprovalStatus"),
        model_package_group_name=_group_name(group) if group else None,
        model_package_type=response._get_param("ModelPackageType", "Unversioned"),
        next_token=response._get_param("NextToken"),
        sort_by=response._get_param("SortBy"),
        sort_order=response._get_param("SortOrder"),
    )
    summaries = [
        {k: v for k, v in p.gen_response_object().items() if k in _summary_fields()}
        for p in packages
    ]
    return ActionResult({"ModelPackageSummaryList": summaries, "NextToken": next_token})


# ---------------------------------------------------------------------------- deploying
def _package(backend: Any, name_or_arn: str) -> Any:
    package = backend.model_packages.get(
        backend.model_package_name_mapping.get(name_or_arn, name_or_arn)
    )
    if package is None:
        raise ValidationError(f"Model package {name_or_arn} does not exist.")
    return package


def deployable_package(backend: Any, name_or_arn: str) -> Any:
    """The package a model's container names, refused as SageMaker refuses it: unknown, or a
    versioned package that is not Approved."""
    package = _package(backend, name_or_arn)
    if package.model_package_version is not None and package.model_approval_status != APPROVED:
        raise ValidationError(
            f"Model package {package.arn} cannot be deployed: its ModelApprovalStatus is "
            f"{package.model_approval_status}; a versioned model package must be Approved to "
            "deploy it."
        )
    return package


def create_model(
    self: Any,
    model_name: str,
    execution_role_arn: str,
    primary_container: dict[str, Any] | None,
    vpc_config: dict[str, Any] | None,
    containers: list[dict[str, Any]] | None,
    tags: list[dict[str, str]] | None,
) -> Any:
    if model_name in self._models:
        arn = arn_formatter("model", model_name, self.account_id, self.region_name)
        raise ValidationError(f'Cannot create already existing model "{arn}".')
    for container in [primary_container or {}, *(containers or [])]:
        if container.get("ModelPackageName"):
            deployable_package(self, str(container["ModelPackageName"]))
    return _create_model(
        self, model_name, execution_role_arn, primary_container, vpc_config, containers, tags
    )


def model_data_url(backend: Any, container: Mapping[str, Any]) -> str:
    """The artifact a model's container serves: its own, or its model package's (checked when
    the model was created)."""
    if container.get("ModelDataUrl"):
        return str(container["ModelDataUrl"])
    package = _package(backend, str(container["ModelPackageName"]))
    return str(package.inference_specification["Containers"][0]["ModelDataUrl"])


def install() -> None:
    """Put SageMaker's registry rules into moto (undone when the local cloud stops)."""
    replace(SageMakerModelBackend, "create_model_package_group", create_model_package_group)
    replace(SageMakerModelBackend, "create_model_package", create_model_package)
    replace(SageMakerModelBackend, "update_model_package", update_model_package)
    replace(SageMakerModelBackend, "create_model", create_model)
    replace(SageMakerResponse, "list_model_packages", list_model_packages)
