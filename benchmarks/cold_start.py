"""Cold start of the functions: what importing each handler costs, against what no handler avoids.

    python benchmarks/cold_start.py               # both interpreters; prints the section
    python benchmarks/cold_start.py --write       # ... and puts it in benchmarks/results.md
    python benchmarks/cold_start.py --quick       # fewer runs, one interpreter, as built only
    python benchmarks/cold_start.py --before DIR  # predict of another checkout beside this one's
    python benchmarks/cold_start.py --instructions  # ... and instruction counts (valgrind), too

Every canary starts new instances of the predict function and every one pays for its import. The
baseline is what any handler pays: ``import boto3`` and one ``sagemaker-runtime`` client. Each
measurement runs in a new interpreter (the Python of ``.venv-py312``, Lambda's 3.12, and of
``.venv``), the way Lambda starts one: the function's folder and the layer (``layers/common``)
first on the path, the template's environment for that function (its ``Ref``s filled with
stand-in names), ``LAMBDA_TASK_ROOT`` set (so X-Ray's SDK works as it does in Lambda, tracing
on), no AWS configuration files. The child times the one statement (``import app``, or the
baseline's) with its process CPU time and the wall clock; the baseline and every function take
turns, round after round, and each keeps its best: what is left when nothing else competes for the
machine.

Bytecode, two ways:

- **as built**: ``sam build`` ships the layer and the functions as source, and Lambda's ``/opt``
  and ``/var/task`` are read-only, so every cold start compiles each module it imports from them
  (the standard library has its bytecode);
- **compiled**: everything has its bytecode, as a layer built with ``compileall`` would.

Warm requests: one predict instance answers the sample ``POST /predict`` event
(``events/predict.json``) again and again, every AWS call answered in-process by a stand-in for
the network (botocore still builds, signs and parses every call), X-Ray sampling every request.
A request's overhead is its time in the handler less its time in ``InvokeEndpoint``. The first
request after the import is timed too (bytecode as built): it makes the clients made on first use,
reads the production record and the model's statistics. With ``--before DIR`` (a checkout, such as
``git archive HEAD functions layers template.yaml | tar -x -C DIR``), that checkout's predict is
timed in the same rounds and instances as this one's.

Instructions (``--instructions``, needs valgrind): the same imports counted in instructions by
callgrind, the interpreter's own start (``python -c pass``) left out. A count does not depend on
what else the machine runs, as a time does: it checks the ratios a busy machine blurs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.md"
SECTION = "## Cold start of the functions"
INTERPRETERS = (ROOT / ".venv-py312" / "bin" / "python", ROOT / ".venv" / "bin" / "python")
BASELINE = 'import boto3; boto3.client("sagemaker-runtime")'
HANDLER = "import app"
# The least a handler that keeps Powertools' logging, metrics and X-Ray tracing can import.
FLOOR_LABEL = "floor: the baseline + Powertools' Logger, Metrics and Tracer (botocore patched)"
FLOOR = (
    f"{BASELINE}; from aws_lambda_powertools import Logger, Metrics, Tracer; "
    "Logger(); Metrics(); Tracer(patch_modules=('botocore',))"
)
PREDICT = "predict"
BEFORE = "predict, before"
PREDICT_BUDGET = 1.3  # predict's import, in baselines
# What predict may add to the floor, for the test that guards it: on Lambda's Python (3.12, as
# built) the floor measured 1.22-1.23 baselines and predict 1.29, 1.05 times the floor. The floor
# itself moves with the interpreter and the machine (1.26 to 1.39 baselines on 3.11 here),
# predict's margin over it much less: 0.99 to 1.06 on a quiet machine, up to 1.10 in a busy test
# run. The benchmark holds the 1.3 goal; the test fails on a real growth, such as the REST
# resolver and pydantic settings (about 1.2 times the floor).
OVER_FLOOR_BUDGET = 1.12
OTHERS_BUDGET = 2.0  # every other function's
WARM_BUDGET_MS = 1.0  # a warm request's p50 overhead over its endpoint call
REGION = "us-east-1"
STACK = "safe-deploy"
TRACE_HEADER = "Root=1-6b07f897-3c1e0b7f9d2a4e6b00bb8f1a;Parent=53995c3f42cd8ad8;Sampled=1"
PRODUCTION = "fare-2e71d0c94a5b-prod"

# The child that times one statement, in a new interpreter: CPU seconds, then wall seconds.
TIMER = """\
import sys, time
cpu, wall = time.process_time(), time.perf_counter()
exec(sys.argv[1])
print(time.process_time() - cpu, time.perf_counter() - wall)
"""


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- where a function runs
def function_dirs(repo: Path = ROOT) -> dict[str, str]:
    """Function folder name -> logical id, as the template declares them."""
    from safe_deploy.localcloud.template import load

    template = load(repo / "template.yaml")
    return {
        str(resource["Properties"]["CodeUri"]).strip("/").split("/")[-1]: logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def template_environment(function_dir: str, repo: Path = ROOT) -> dict[str, str]:
    """The template's variables for a function (Globals under its own), each resource it names
    given a stand-in physical name."""
    from safe_deploy.localcloud.template import Evaluator, function_environment, load

    class StandIns(Evaluator):
        def physical(self, logical_id: str) -> Any:
            return f"{STACK}-{logical_id}-bench"

        def attribute(self, logical_id: str, attribute: str) -> Any:
            return f"arn:aws:bench:{REGION}:123456789012:{logical_id}/{attribute}"

    template = load(repo / "template.yaml")
    logical_id = function_dirs(repo)[function_dir]
    evaluator = StandIns(
        template,
        pseudo={
            "AWS::Region": REGION,
            "AWS::AccountId": "123456789012",
            "AWS::StackName": STACK,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
    )
    properties = template["Resources"][logical_id]["Properties"]
    resolved = evaluator.resolve(function_environment(template, properties))
    return {name: str(value) for name, value in resolved.items()}


def lambda_environment(function_dir: str, home: Path, repo: Path = ROOT) -> dict[str, str]:
    """A process environment like the one Lambda starts the function in (nothing inherited but
    ``PATH``)."""
    code = repo / "functions" / function_dir
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # no ~/.aws: Lambda has none
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([str(code), str(repo / "layers" / "common")]),
        "LAMBDA_TASK_ROOT": str(code),
        "AWS_LAMBDA_FUNCTION_NAME": f"{STACK}-{function_dir}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "ASIABENCHMARKEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "bench/secret/key/example",
        "AWS_SESSION_TOKEN": "bench-session-token",
        **template_environment(function_dir, repo),
    }


# --------------------------------------------------------------------------- bytecode
@dataclass(frozen=True)
class Bytecode:
    """Where the children find bytecode: ``PYTHONPYCACHEPREFIX`` (a folder of this run's own, so
    the interpreters' folders are neither read nor written) and which sources keep theirs."""

    prefix: Path
    stdlib_only: bool  # as built: the layer and the functions compile at every import

    def environment(self) -> dict[str, str]:
        return {"PYTHONPYCACHEPREFIX": str(self.prefix), "PYTHONDONTWRITEBYTECODE": "1"}


def prepare_bytecode(
    bytecode: Bytecode, python: Path, runs: Sequence[tuple[Sequence[str], Mapping[str, str], Path]]
) -> None:
    """Compile what each run (arguments to ``python``, environment, folder) imports into the
    prefix, then, as built, remove all but the standard library's."""
    for arguments, environment, cwd in runs:
        env = {k: v for k, v in environment.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(bytecode.prefix)
        done = subprocess.run(
            [str(python), *arguments], env=env, cwd=cwd, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{arguments} failed in {cwd}:\n{done.stderr[-3000:]}")
    if bytecode.stdlib_only:
        stdlib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        kept = bytecode.prefix / Path(stdlib).relative_to(Path(stdlib).anchor)
        for compiled in bytecode.prefix.rglob("*.pyc"):
            if not compiled.is_relative_to(kept):
                compiled.unlink()


# --------------------------------------------------------------------------- timing imports
@dataclass(frozen=True)
class Timing:
    cpu: float  # seconds of process CPU time
    wall: float


def time_statement(
    python: Path, statement: str, environment: Mapping[str, str], cwd: Path
) -> Timing:
    """One cold run of ``statement`` in a new interpreter."""
    done = subprocess.run(
        [str(python), "-c", TIMER, statement],
        env=dict(environment),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{statement!r} failed in {cwd}:\n{done.stderr[-3000:]}")
    cpu, wall = (float(v) for v in done.stdout.split()[-2:])
    return Timing(cpu, wall)


@dataclass
class Best:
    """The runs of one measurement; the best (least) of each clock."""

    runs: list[Timing] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return min(t.cpu for t in self.runs)

    @property
    def wall(self) -> float:
        return min(t.wall for t in self.runs)


@dataclass(frozen=True)
class Subject:
    """Something to time: a statement in a function's environment."""

    name: str
    statement: str
    environment: Mapping[str, str]
    cwd: Path


def subjects_for(
    functions: Sequence[str],
    bytecode: Bytecode,
    home: Path,
    repo: Path = ROOT,
    before: Path | None = None,
    floor: bool = False,
) -> list[Subject]:
    """The baseline (in the first function's environment), each function's import and, with
    ``before``, that checkout's predict; with ``floor``, :data:`FLOOR` too."""
    places = [(name, name, repo) for name in functions]
    if before is not None:
        places.append((BEFORE, PREDICT, before))
    chosen = []
    for name, function_dir, checkout in places:
        environment = {**lambda_environment(function_dir, home, checkout), **bytecode.environment()}
        cwd = checkout / "functions" / function_dir
        chosen.append(Subject(name, HANDLER, environment, cwd))
    first = chosen[0]
    extra = [Subject("floor", FLOOR, first.environment, first.cwd)] if floor else []
    return [Subject("baseline", BASELINE, first.environment, first.cwd), *extra, *chosen]


@dataclass(frozen=True)
class ImportRatio:
    """A function's best import against the best baseline, both clocks."""

    function: str
    cpu: float
    wall: float
    baseline_cpu: float
    baseline_wall: float
    rounds: int

    @property
    def ratio(self) -> float:
        return self.cpu / self.baseline_cpu

    @property
    def wall_ratio(self) -> float:
        return self.wall / self.baseline_wall

    def __str__(self) -> str:
        return (
            f"{self.function}: {self.cpu * 1000:.0f} ms of CPU against the baseline's "
            f"{self.baseline_cpu * 1000:.0f} ms ({self.ratio:.2f}x; wall clock "
            f"{self.wall_ratio:.2f}x), best of {self.rounds}"
        )


@dataclass
class ImportBench:
    """The baseline and some functions' imports, timed in rounds: each round times every one of
    them once, in turn, so a busy spell of the machine falls on all of them; each keeps its best."""

    python: Path
    subjects: list[Subject]
    found: dict[str, Best] = field(default_factory=dict)
    rounds: int = 0

    def run(self, rounds: int) -> None:
        for _ in range(rounds):
            for subject in self.subjects:
                timing = time_statement(
                    self.python, subject.statement, subject.environment, subject.cwd
                )
                self.found.setdefault(subject.name, Best()).runs.append(timing)
            self.rounds += 1

    def ratios(self) -> list[ImportRatio]:
        baseline = self.found["baseline"]
        return [
            ImportRatio(
                s.name,
                self.found[s.name].cpu,
                self.found[s.name].wall,
                baseline.cpu,
                baseline.wall,
                self.rounds,
            )
            for s in self.subjects[1:]
        ]


@contextlib.contextmanager
def import_bench(
    python: Path,
    functions: Sequence[str],
    *,
    stdlib_only: bool = True,
    repo: Path = ROOT,
    before: Path | None = None,
    floor: bool = False,
) -> Iterator[ImportBench]:
    """An :class:`ImportBench` of ``functions`` on ``python``, as built (``stdlib_only``) or
    compiled; the baseline runs in the first function's environment."""
    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        bytecode = Bytecode(Path(scratch) / "pycache", stdlib_only)
        subjects = subjects_for(functions, bytecode, home, repo, before, floor)
        prepare_bytecode(
            bytecode, python, [(["-c", s.statement], s.environment, s.cwd) for s in subjects]
        )
        yield ImportBench(python, subjects)


def import_ratios(
    python: Path,
    functions: Sequence[str],
    rounds: int,
    *,
    stdlib_only: bool = True,
    repo: Path = ROOT,
    before: Path | None = None,
    floor: bool = False,
) -> list[ImportRatio]:
    """Each function's import in baselines, the best of ``rounds``."""
    with import_bench(
        python, functions, stdlib_only=stdlib_only, repo=repo, before=before, floor=floor
    ) as bench:
        bench.run(rounds)
        return bench.ratios()


# --------------------------------------------------------------------------- warm requests
class _Raw(io.BytesIO):
    """A response body as urllib3 hands it to botocore."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def _statistics() -> bytes:
    """A model's baseline statistics.json (Model Monitor's format), wide enough for the event."""
    bounds = {
        "duration_minutes": (0.3, 60.0),
        "passenger_count": (1, 6),
        "trip_distance": (0.04, 39.0),
    }
    features = [
        {
            "name": name,
            "inferred_type": "Fractional",
            "numerical_statistics": {"common": {"num_present": 1000}, "min": low, "max": high},
        }
        for name, (low, high) in bounds.items()
    ]
    return json.dumps({"version": 0.0, "features": features}).encode()


def _answer_aws(request: Any, event_name: str, **_: Any) -> Any:
    """What each AWS call predict makes is answered, instead of the network."""
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    operation = event_name.split(".", 1)[1]
    body: bytes
    if operation == "sagemaker-runtime.InvokeEndpoint":
        rows = (request.body or b"").decode().count("\n") + 1
        body, media = b"12.5\n" * rows, "text/csv; charset=utf-8"
    elif operation == "ssm.GetParameter":
        value = {"Name": "production", "Type": "String", "Value": PRODUCTION, "Version": 1}
        body, media = json.dumps({"Parameter": value}).encode(), "application/x-amz-json-1.1"
    elif operation == "s3.GetObject":
        body, media = _statistics(), "application/json"
    else:
        raise RuntimeError(f"the benchmark does not answer {operation}")
    headers = HTTPHeaders()
    headers["Content-Type"] = media
    headers["Content-Length"] = str(len(body))
    return AWSResponse(request.url, 200, headers, _Raw(body))


@dataclass
class _Context:
    """What Powertools reads from Lambda's context object."""

    function_name: str = f"{STACK}-predict"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:{STACK}-predict"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    log_group_name: str = f"/aws/lambda/{STACK}-predict"
    log_stream_name: str = "2026/11/26/[$LATEST]bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def serve(requests: int, out: Path) -> None:
    """In a predict instance (the environment set by the caller): the first request after the
    import, then ``requests`` warm ones; each request's time, and its time in InvokeEndpoint."""
    from botocore.handlers import BUILTIN_HANDLERS

    BUILTIN_HANDLERS.append(("before-send", _answer_aws))  # every session's clients, as moto does
    app: Any = importlib.import_module("app")
    if app.tracer.disabled:
        raise RuntimeError("X-Ray tracing is off: the requests would not pay for it")
    in_endpoint: list[float] = []
    invoke = app.RUNTIME.invoke_endpoint

    def timed_invoke(**kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return invoke(**kwargs)
        finally:
            in_endpoint.append(time.perf_counter() - started)

    app.RUNTIME.invoke_endpoint = timed_invoke
    event = json.loads((ROOT / "events" / "predict.json").read_text())
    context = _Context()
    totals = []
    for _ in range(requests + 1):
        started = time.perf_counter()
        answer = app.lambda_handler(event, context)
        totals.append(time.perf_counter() - started)
        if answer["statusCode"] != 200:
            raise RuntimeError(f"predict answered {answer}")
    out.write_text(json.dumps({"totals": totals, "in_endpoint": in_endpoint}))


@dataclass(frozen=True)
class Requests:
    first: float  # seconds: the first request after the import
    first_in_endpoint: float
    overheads: list[float]  # warm requests: time in the handler less time in InvokeEndpoint
    in_endpoint: list[float]

    def overhead_ms(self, percentile: int) -> float:
        return statistics.quantiles(self.overheads, n=100)[percentile - 1] * 1000

    def endpoint_ms(self, percentile: int) -> float:
        return statistics.quantiles(self.in_endpoint, n=100)[percentile - 1] * 1000


def measure_requests(python: Path, requests: int, repo: Path = ROOT) -> Requests:
    """``serve`` in a new predict instance of ``repo``'s code, bytecode as built."""
    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        out = Path(scratch) / "requests.json"
        bytecode = Bytecode(Path(scratch) / "pycache", stdlib_only=True)
        environment = {
            **lambda_environment(PREDICT, home, repo),
            **bytecode.environment(),
            "_X_AMZN_TRACE_ID": TRACE_HEADER,  # Lambda sets it for each request: sampled
            "PYTHONPATH": os.pathsep.join(
                [str(repo / "functions" / PREDICT), str(repo / "layers" / "common"), str(ROOT)]
            ),
        }
        cwd = repo / "functions" / PREDICT
        arguments = ["-m", "benchmarks.cold_start", "--serve"]
        prepare_bytecode(bytecode, python, [([*arguments, "1", str(out)], environment, cwd)])
        done = subprocess.run(
            [str(python), *arguments, str(requests), str(out)],
            env=environment,
            cwd=cwd,
            stdout=subprocess.DEVNULL,  # the metrics' and the logger's lines, as Lambda takes them
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"predict's requests failed:\n{done.stderr[-3000:]}")
        found = json.loads(out.read_text())
    totals, in_endpoint = found["totals"], found["in_endpoint"]
    overheads = [t - e for t, e in zip(totals[1:], in_endpoint[1:], strict=True)]
    return Requests(totals[0], in_endpoint[0], overheads, in_endpoint[1:])


# --------------------------------------------------------------------------- instructions
def instructions(
    python: Path, statement: str, environment: Mapping[str, str], cwd: Path, scratch: Path
) -> int:
    """The instructions one run of ``statement`` executes, interpreter start included."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/callgrind.%p",
         str(python), "-c", statement],
        env={**environment, "PYTHONHASHSEED": "0"},  # the same dictionaries every run
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind on {statement!r} failed:\n{done.stderr[-3000:]}")
    return int(found.group(1))


def count_instructions(
    python: Path, stdlib_only: bool, repo: Path, before: Path | None
) -> dict[str, int]:
    """Instructions of the baseline, the floor, predict (and the checkout ``before``'s), less
    those of an interpreter that starts and does nothing."""
    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        bytecode = Bytecode(Path(scratch) / "pycache", stdlib_only)
        subjects = subjects_for([PREDICT], bytecode, home, repo, before, floor=True)
        start = Subject("start", "pass", subjects[0].environment, subjects[0].cwd)
        runs = [start, *subjects]
        prepare_bytecode(
            bytecode, python, [(["-c", s.statement], s.environment, s.cwd) for s in runs]
        )

        def count(subject: Subject) -> int:
            return instructions(
                python, subject.statement, subject.environment, subject.cwd, Path(scratch)
            )

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            counts = list(pool.map(count, runs))
    return {s.name: n - counts[0] for s, n in zip(runs[1:], counts[1:], strict=True)}


# --------------------------------------------------------------------------- the report
@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    targets: list[tuple[str, str, str, bool]] = field(default_factory=list)


def python_version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def import_table(ratios: Sequence[ImportRatio], before: Path | None) -> list[str]:
    rows = [
        "| function | import, best CPU (ms) | in baselines | best wall (ms) | in baselines "
        "| budget | met |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    baseline = ratios[0]
    rows.append(
        f"| baseline: `import boto3` + a `sagemaker-runtime` client | "
        f"{baseline.baseline_cpu * 1000:.0f} | 1.00 | {baseline.baseline_wall * 1000:.0f} | 1.00 "
        "| | |"
    )
    for r in ratios:
        if r.function == "floor":
            name, budget_cell, met = FLOOR_LABEL, "", ""
        else:
            budget = PREDICT_BUDGET if r.function in (PREDICT, BEFORE) else OTHERS_BUDGET
            budget_cell, met = f"{budget:g}", "yes" if r.ratio <= budget else "**no**"
            name = f"predict, before (`{before}`)" if r.function == BEFORE else r.function
        rows.append(
            f"| {name} | {r.cpu * 1000:.0f} | {r.ratio:.2f} | {r.wall * 1000:.0f} | "
            f"{r.wall_ratio:.2f} | {budget_cell} | {met} |"
        )
    return rows


def bench_imports(
    report: Report,
    python: Path,
    rounds: int,
    stdlib_only: bool,
    repo: Path,
    before: Path | None,
) -> dict[str, ImportRatio]:
    functions = [PREDICT, *sorted(set(function_dirs(repo)) - {PREDICT})]
    mode = "as built (layer and functions compiled at import)" if stdlib_only else "compiled"
    say(f"{python}: imports, {mode}, {rounds} rounds")
    ratios = import_ratios(
        python, functions, rounds, stdlib_only=stdlib_only, repo=repo, before=before, floor=True
    )
    version = python_version(python)
    report.lines += [
        "",
        f"**Python {version}, bytecode {mode}**",
        "",
        *import_table(ratios, before),
    ]
    bytecode = "as built" if stdlib_only else "compiled"
    for r in ratios:
        budget = PREDICT_BUDGET if r.function == PREDICT else OTHERS_BUDGET
        if r.function == PREDICT or (r.function not in (BEFORE, "floor") and r.ratio > budget):
            what = f"{r.function}'s import, Python {version}, {bytecode}"
            report.targets.append(
                (what, f"{r.ratio:.2f}x the baseline", f"<= {budget:g}x", r.ratio <= budget)
            )
    return {r.function: r for r in ratios}


def request_rows(label: str, found: Requests, imported: ImportRatio, requests: int) -> list[str]:
    first = (found.first - found.first_in_endpoint) * 1000
    return [
        f"| {label}: import (best wall, as built) | {imported.wall * 1000:.0f} | |",
        f"| {label}: first request after the import | {first:.1f} | "
        f"{found.first_in_endpoint * 1000:.1f} |",
        f"| {label}: to the first answer (import + first request) | "
        f"{imported.wall * 1000 + found.first * 1000:.0f} | |",
        f"| {label}: warm, p50 of {requests:,} | {found.overhead_ms(50):.3f} | "
        f"{found.endpoint_ms(50):.3f} |",
        f"| {label}: warm, p90 | {found.overhead_ms(90):.3f} | {found.endpoint_ms(90):.3f} |",
        f"| {label}: warm, p99 | {found.overhead_ms(99):.3f} | {found.endpoint_ms(99):.3f} |",
    ]


def bench_requests(
    report: Report,
    python: Path,
    requests: int,
    imports: Mapping[str, ImportRatio],
    repo: Path,
    before: Path | None,
) -> None:
    say(f"{python}: {requests} warm predict requests")
    found = measure_requests(python, requests, repo)
    version = python_version(python)
    report.lines += [
        "",
        f"**Python {version}, predict's requests** (X-Ray sampling every one; AWS answered "
        "in-process)",
        "",
        "| predict | ms, less the time in InvokeEndpoint | ms in InvokeEndpoint |",
        "|---|---:|---:|",
        *request_rows("now", found, imports[PREDICT], requests),
    ]
    if before is not None:
        earlier = measure_requests(python, requests, before)
        report.lines += request_rows("before", earlier, imports[BEFORE], requests)
    p50 = found.overhead_ms(50)
    report.targets.append(
        (
            f"a warm request's overhead over its endpoint call, p50, Python {version}",
            f"{p50:.3f} ms",
            f"<= {WARM_BUDGET_MS:g} ms",
            p50 <= WARM_BUDGET_MS,
        )
    )


def bench_instructions(report: Report, python: Path, repo: Path, before: Path | None) -> None:
    version = python_version(python)
    rows = [
        "",
        f"**Python {version}, instructions** (callgrind; the interpreter's start left out)",
        "",
        "| import | bytecode | instructions (millions) | in baselines |",
        "|---|---|---:|---:|",
    ]
    labels = {
        "baseline": "baseline",
        "floor": FLOOR_LABEL,
        PREDICT: PREDICT,
        BEFORE: f"predict, before (`{before}`)",
    }
    for stdlib_only in (True, False):
        mode = "as built" if stdlib_only else "compiled"
        say(f"{python}: instructions, {mode}")
        counts = count_instructions(python, stdlib_only, repo, before)
        rows += [
            f"| {labels[name]} | {mode} | {n / 1e6:,.0f} | {n / counts['baseline']:.3f} |"
            for name, n in counts.items()
        ]
        ratio = counts[PREDICT] / counts["baseline"]
        report.targets.append(
            (
                f"predict's import in instructions, Python {version}, {mode}",
                f"{ratio:.3f}x the baseline",
                f"<= {PREDICT_BUDGET:g}x",
                ratio <= PREDICT_BUDGET,
            )
        )
    report.lines += rows


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def section(report: Report, args: argparse.Namespace, started: float) -> str:
    targets = [
        "| target | measured | wanted | met |",
        "|---|---|---|---|",
        *(f"| {t} | {m} | {w} | {'yes' if ok else '**no**'} |" for t, m, w, ok in report.targets),
    ]
    minutes = (time.monotonic() - started) / 60
    header = [
        SECTION,
        "",
        f"- command: `python benchmarks/cold_start.py{''.join(' ' + a for a in args.argv)}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (the run took {minutes:.1f} min)",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}; load average at the end "
        f"{load_average()} (1, 5, 15 min)",
        f"- each import the best of {args.rounds} new interpreters, the baseline and every "
        "function taking turns, in the environment Lambda gives the function (template variables, "
        "`LAMBDA_TASK_ROOT`, X-Ray on, the function's folder and `layers/common` first on the "
        "path); the ratio is of process CPU time, the wall clock beside it",
        "- bytecode *as built*: the layer and the functions compile at every import, as `sam "
        "build` ships them to Lambda's read-only `/opt` and `/var/task`; *compiled*: everything "
        "has bytecode, as a layer built with `compileall` would",
        "- floor: what a handler that keeps Powertools' logging, metrics and X-Ray tracing cannot "
        "avoid importing; predict's import is compared with it",
        "- on a machine that other work shares, the best times of two runs differ by up to a "
        "tenth, and short imports (compiled) the most; the instruction counts (`--instructions`) "
        "do not depend on it",
        "- requests: one predict instance answers `events/predict.json`, every AWS call answered "
        "in-process (botocore still builds, signs and parses it), X-Ray sampling every request; "
        "the first request makes the SSM and S3 clients and reads the production record and the "
        "model's statistics",
    ]
    if args.before:
        header.append(f"- before: the predict function and layer in `{args.before}`")
    return "\n".join([*header, *report.lines, "", *targets]) + "\n"


def write_section(text: str, path: Path = RESULTS) -> None:
    """Put the section in ``path`` in place of an earlier one, or at the end."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1).rstrip("\n") + "\n"
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="cold interpreters per import")
    parser.add_argument("--requests", type=int, default=2000, help="warm predict requests")
    parser.add_argument("--python", type=Path, action="append", help="interpreters to measure")
    parser.add_argument("--quick", action="store_true", help="3 rounds, one interpreter")
    parser.add_argument("--before", type=Path, help="a checkout whose predict is timed beside")
    parser.add_argument("--instructions", action="store_true", help="count them (valgrind)")
    parser.add_argument("--write", action="store_true", help=f"put the section in {RESULTS}")
    parser.add_argument("--serve", nargs=2, metavar=("REQUESTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.rounds = min(args.rounds, 3)
    before = args.before.resolve() if args.before else None
    # absolute, not resolved: a virtual environment's python is a link to the one it was made from
    pythons = [p.absolute() for p in args.python or ()] or (
        INTERPRETERS[:1] if args.quick else INTERPRETERS
    )
    started = time.monotonic()
    report = Report()
    for python in pythons:
        imports = bench_imports(report, python, args.rounds, True, ROOT, before)
        if not args.quick:
            bench_imports(report, python, args.rounds, False, ROOT, before)
        bench_requests(report, python, args.requests, imports, ROOT, before)
        if args.instructions:
            bench_instructions(report, python, ROOT, before)
    text = section(report, args, started)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
