"""Generate the template's ``SageMakerImages`` mapping from the SageMaker Python SDK.

Image URIs differ per region (account, partition, DNS suffix), so they are never typed by hand:
this script asks ``sagemaker.core.image_uris.retrieve`` -- the same lookup the SDK itself does
-- for every region the SDK's image configuration offers all the images in, and renders one
CloudFormation ``Mappings`` entry:

    scripts/generate-image-mapping                          # print the block
    scripts/generate-image-mapping --write template.yaml    # replace it between the markers
    scripts/generate-image-mapping --check template.yaml    # exit 1 if it is out of date

It needs ``sagemaker-core`` (about 400 MB), so it runs in its own tool environment, which the
``scripts/generate-image-mapping`` wrapper creates from ``scripts/image-mapping-requirements.txt``;
the project's environment never carries the SDK.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SDK_PACKAGE = "sagemaker-core"
MAPPING_NAME = "SageMakerImages"
BEGIN_MARKER = f"  # BEGIN generated: {MAPPING_NAME}"
END_MARKER = f"  # END generated: {MAPPING_NAME}"
REGENERATE_COMMAND = "scripts/generate-image-mapping --write template.yaml"

# Image versions are chosen here, not taken as "newest" from the SDK: the processing image fixes
# the Python and library versions that model/prepare.py runs under, so moving it is a decision.
XGBOOST_VERSION = "1.7-1"
SKLEARN_VERSION = "1.9-0"  # the newest processing image sagemaker-core 2.27.0 offers
PROCESSING_INSTANCE_TYPE = "ml.m5.xlarge"  # only picks the cpu flavour; the image fits any size

# What retrieve() returns, and so what may stand as a plain YAML scalar without quoting.
IMAGE_URI = re.compile(
    r"[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.[a-z0-9.-]+/[a-z0-9-]+(:[A-Za-z0-9._-]+)?"
)
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")

Retrieve = Callable[..., str]


@dataclass(frozen=True)
class Image:
    """One image in the mapping: its key in the template and how to ask the SDK for it."""

    key: str
    framework: str
    arguments: Mapping[str, str]

    def describe(self) -> str:
        version = self.arguments.get("version")
        return f"{self.framework} {version}" if version else self.framework


IMAGES = (
    # The built-in algorithm image for the training job and the endpoints.
    Image("XGBoost", "xgboost", {"version": XGBOOST_VERSION}),
    # The Model Monitor analyzer for the baseline job and the monitoring schedules.
    Image("ModelMonitor", "model-monitor", {}),
    # The PrepareData processing job. "training" is the scope SKLearnProcessor resolves to.
    Image(
        "SKLearn",
        "sklearn",
        {
            "version": SKLEARN_VERSION,
            "py_version": "py3",
            "instance_type": PROCESSING_INSTANCE_TYPE,
            "image_scope": "training",
        },
    ),
)


class GenerationError(Exception):
    """The mapping cannot be generated or placed; the message says why."""


class MarkerError(GenerationError):
    """The template has no single, well-ordered pair of marker lines."""


class UnexpectedSdkAnswer(GenerationError):
    """The SDK answered with something that is not a region name or an ECR image URI."""


def regions_in_config(config: object) -> set[str]:
    """Every region named under a ``registries`` key anywhere in an image URI config."""
    found: set[str] = set()
    if isinstance(config, Mapping):
        for key, value in config.items():
            if key == "registries" and isinstance(value, Mapping):
                found.update(str(region) for region in value)
            else:
                found |= regions_in_config(value)
    elif isinstance(config, list):
        for item in config:
            found |= regions_in_config(item)
    return found


def is_unsupported_region(error: ValueError) -> bool:
    # image_uris._validate_arg's wording; any other ValueError is a real failure.
    return str(error).startswith("Unsupported region:")


def images_by_region(
    images: Iterable[Image],
    candidate_regions: Iterable[str],
    retrieve: Retrieve,
) -> dict[str, dict[str, str]]:
    """URIs for each region where the SDK offers every image, regions sorted.

    ``retrieve`` has ``sagemaker.core.image_uris.retrieve``'s signature; a region it refuses for
    any one image is left out rather than given a partial entry.
    """
    images = tuple(images)
    table: dict[str, dict[str, str]] = {}
    for region in sorted(set(candidate_regions)):
        uris: dict[str, str] = {}
        for image in images:
            try:
                uri = retrieve(image.framework, region, **image.arguments)
            except ValueError as error:
                if is_unsupported_region(error):
                    break
                raise
            if not IMAGE_URI.fullmatch(uri):
                raise UnexpectedSdkAnswer(f"{image.describe()} in {region}: {uri!r}")
            uris[image.key] = uri
        else:
            table[region] = uris
    return table


def render_mapping(
    table: Mapping[str, Mapping[str, str]],
    images: Iterable[Image],
    sdk_version: str,
) -> str:
    """The block that goes between the markers, indented to sit under ``Mappings:``."""
    images = tuple(images)
    for region in table:
        if not REGION.fullmatch(region):
            raise UnexpectedSdkAnswer(f"not a region name: {region!r}")
    described = ", ".join(image.describe() for image in images)
    lines = [
        f"  # Generated from {SDK_PACKAGE} {sdk_version}'s image URI config ({described}),",
        f"  # for the {len(table)} regions of the aws partition that have all of them.",
        "  # Do not edit; regenerate with:",
        f"  #   {REGENERATE_COMMAND}",
        f"  {MAPPING_NAME}:",
    ]
    for region, uris in table.items():
        lines.append(f"    {region}:")
        lines.extend(f"      {image.key}: {uris[image.key]}" for image in images)
    return "\n".join(lines) + "\n"


def marker_lines(lines: list[str]) -> tuple[int, int]:
    """Indexes of the BEGIN and END marker lines, or MarkerError saying what is wrong."""
    begins = [i for i, line in enumerate(lines) if line.rstrip() == BEGIN_MARKER]
    ends = [i for i, line in enumerate(lines) if line.rstrip() == END_MARKER]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise MarkerError(
            f"expected exactly one line {BEGIN_MARKER.strip()!r} followed by one line "
            f"{END_MARKER.strip()!r} (indented two spaces, under 'Mappings:'); found "
            f"{len(begins)} and {len(ends)}"
            + (" in the wrong order" if begins and ends and begins[0] > ends[0] else "")
        )
    return begins[0], ends[0]


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with everything between the marker lines replaced by ``block``; markers kept."""
    lines = text.splitlines(keepends=True)
    begin, end = marker_lines(lines)
    newline = "\r\n" if lines[begin].endswith("\r\n") else "\n"
    if not lines[begin].endswith(("\n", "\r")):
        lines[begin] += newline
    generated = [line + newline for line in block.splitlines()]
    return "".join(lines[: begin + 1] + generated + lines[end:])


def load_sdk() -> tuple[Retrieve, set[str], str]:
    """``retrieve``, the regions its configs name for our images, and the SDK's version."""
    try:
        image_uris: Any = importlib.import_module("sagemaker.core.image_uris")
    except ImportError as error:
        raise GenerationError(
            f"cannot import sagemaker.core.image_uris ({error}); run this through "
            "scripts/generate-image-mapping, which sets up its tool environment"
        ) from error
    candidates: set[str] = set()
    for framework in sorted({image.framework for image in IMAGES}):
        candidates |= regions_in_config(image_uris.config_for_framework(framework))
    return image_uris.retrieve, candidates, importlib.metadata.version(SDK_PACKAGE)


# The state machines name Step Functions' integrations as arn:aws:states:::..., and IAM resources
# are written with the aws partition's services: the stack deploys in the standard partition only.
OTHER_PARTITIONS = ("cn-", "us-gov-", "us-iso")


def in_standard_partition(region: str) -> bool:
    return not region.startswith(OTHER_PARTITIONS)


def generate() -> str:
    retrieve, candidates, sdk_version = load_sdk()
    candidates = {region for region in candidates if in_standard_partition(region)}
    table = images_by_region(IMAGES, candidates, retrieve)
    if not table:
        raise GenerationError(f"{SDK_PACKAGE} {sdk_version} offers no region with every image")
    return render_mapping(table, IMAGES, sdk_version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/generate-image-mapping",
        description=f"Generate the {MAPPING_NAME} CloudFormation mapping from {SDK_PACKAGE}.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--write",
        metavar="TEMPLATE",
        type=Path,
        help="replace the generated block between the marker lines in TEMPLATE",
    )
    action.add_argument(
        "--check",
        metavar="TEMPLATE",
        type=Path,
        help="exit 1, showing a diff, if TEMPLATE's generated block is not what would be written",
    )
    args = parser.parse_args(argv)
    template: Path | None = args.write or args.check
    try:
        if template is None:
            sys.stdout.write(generate())
            return 0
        # Bytes, not read_text(), so a template's own line endings survive the rewrite.
        current = template.read_bytes().decode("utf-8")
        marker_lines(current.splitlines())  # fail before the slow SDK import
        updated = replace_between_markers(current, generate())
    except (GenerationError, OSError, UnicodeDecodeError) as error:
        where = f"{template}: " if template and not isinstance(error, OSError) else ""
        print(f"{parser.prog}: error: {where}{error}", file=sys.stderr)
        return 2

    if args.check:
        if updated == current:
            return 0
        sys.stderr.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                updated.splitlines(keepends=True),
                fromfile=f"{template} (now)",
                tofile=f"{template} (generated)",
            )
        )
        print(
            f"{template}: {MAPPING_NAME} is out of date; run {parser.prog} --write {template}",
            file=sys.stderr,
        )
        return 1

    if updated == current:
        print(f"{template}: {MAPPING_NAME} already up to date", file=sys.stderr)
    else:
        template.write_bytes(updated.encode("utf-8"))
        print(f"{template}: {MAPPING_NAME} updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
