"""CloudWatch Logs as the services write it: each line of output an event in its group and stream,
the group and stream made at first use, so ``aws logs tail`` and ``safe-deploy logs`` read them."""

from __future__ import annotations

import time

from moto.logs.models import logs_backends

from safe_deploy.localcloud.state import LocalSettings

PROCESSING_JOBS = "/aws/sagemaker/ProcessingJobs"  # SageMaker's group; a stream per job instance


def put_lines(settings: LocalSettings, group: str, stream: str, text: str) -> None:
    events = [line for line in text.splitlines() if line.strip()]  # no empty events on AWS
    if not events:
        return
    backend = logs_backends[settings.account][settings.region]
    backend.ensure_log_group(group)
    backend.ensure_log_stream(group, stream)
    now = int(time.time() * 1000)
    backend.put_log_events(group, stream, [{"timestamp": now, "message": m} for m in events])
