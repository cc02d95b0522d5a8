"""CloudFormation for the local cloud: ``sam deploy``, ``local up`` and the deploy state machine
create and update the application's stack through change sets that run as CloudFormation runs
them (``engine``), resource by resource (``resources``), behind CloudFormation's API (``wire``)."""
