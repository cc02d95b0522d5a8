"""Logger, Tracer and Metrics, created once for every function (Powertools reads its settings,
``POWERTOOLS_SERVICE_NAME`` and ``POWERTOOLS_METRICS_NAMESPACE``, from the template's Globals).

The Tracer patches botocore alone: the functions call nothing else X-Ray can trace (Slack and
CloudFormation's response URL go through urllib, which X-Ray's ``patch_all`` leaves alone too),
and ``patch_all`` imports ``requests`` and ``sqlite3`` to patch them, on every cold start.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

TRACED_MODULES = ("botocore",)  # every AWS call, the clients made on first use included

logger = Logger()
tracer = Tracer(patch_modules=TRACED_MODULES)
metrics = Metrics()
