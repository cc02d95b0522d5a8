"""Which AWS operations a Lambda function's code can call, read from its source with ``ast``.

The handlers follow one pattern (STYLE.md): clients are built once at module level
(``boto3.client("s3")``, ``boto3.resource("dynamodb").Table(...)``) and handed to functions of the
shared library, whose parameters are typed with the ``mypy_boto3`` client classes
(``s3: S3Client``). So the analysis:

1. loads the handler module and every ``pipeline_common`` module it imports, transitively;
2. gives names a kind: a client or resource of one service, a DynamoDB table, or an instance of
   one of the loaded classes. Kinds come from ``boto3.client(...)`` calls, from annotations, from
   ``self.x = ...`` in methods, and flow from each call's arguments into the callee's
   parameters, until nothing changes;
3. follows calls from the handler module to find the functions that can run;
4. reports every ``client.method(...)``, ``client.get_paginator("op")``, ``table.put_item(...)``
   and Powertools ``parameters.get_*`` call in them as a botocore operation.

A method on a client that maps to no operation is reported too, never skipped.
"""

from __future__ import annotations

import ast
import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import botocore.session
from botocore import xform_name
from botocore.exceptions import DataNotFoundError
from botocore.model import ServiceModel

# Powertools helpers that call AWS for you: qualified name -> (boto3 service, operations).
POWERTOOLS_CALLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "aws_lambda_powertools.utilities.parameters.get_parameter": ("ssm", ("GetParameter",)),
    "aws_lambda_powertools.utilities.parameters.get_parameters": (
        "ssm",
        ("GetParametersByPath",),
    ),
    "aws_lambda_powertools.utilities.parameters.get_parameters_by_name": (
        "ssm",
        ("GetParameters",),
    ),
    "aws_lambda_powertools.utilities.parameters.set_parameter": ("ssm", ("PutParameter",)),
    "aws_lambda_powertools.utilities.parameters.get_secret": (
        "secretsmanager",
        ("GetSecretValue",),
    ),
    "aws_lambda_powertools.utilities.parameters.get_secrets_by_name": (
        "secretsmanager",
        ("BatchGetSecretValue",),
    ),
    "aws_lambda_powertools.utilities.parameters.set_secret": (
        "secretsmanager",
        ("PutSecretValue", "CreateSecret"),
    ),
    "aws_lambda_powertools.utilities.parameters.get_app_config": (
        "appconfigdata",
        ("StartConfigurationSession", "GetLatestConfiguration"),
    ),
}

# Client methods boto3 adds on top of the service's operations.
INJECTED_METHODS: dict[tuple[str, str], tuple[str, ...]] = {
    # S3 transfers: multipart parts are authorised as s3:PutObject / s3:GetObject.
    ("s3", "upload_file"): ("PutObject",),
    ("s3", "upload_fileobj"): ("PutObject",),
    ("s3", "download_file"): ("HeadObject", "GetObject"),
    ("s3", "download_fileobj"): ("HeadObject", "GetObject"),
    ("s3", "copy"): ("HeadObject", "CopyObject"),
}
# Client attributes that make no request (presigned URLs are signed locally; their use is
# authorised against the signer's role, which these tests cannot see).
LOCAL_METHODS = {"can_paginate", "close", "generate_presigned_url", "generate_presigned_post"}


@dataclass(frozen=True)
class Kind:
    """What a name holds: ``client``/``resource``/``table`` of a service, or ``instance`` of a
    loaded class (``name`` is then the class's qualified name)."""

    kind: str
    name: str


@dataclass(frozen=True)
class ApiCall:
    service: str  # boto3 service name: "s3", "sagemaker-runtime", "stepfunctions"
    operation: str  # botocore operation: "GetObject"
    where: str  # "functions/predict/app.py:42"


@dataclass(frozen=True)
class Unmapped:
    """A call on a client or table that matches no operation of its service."""

    service: str
    method: str
    where: str


@dataclass
class Report:
    calls: list[ApiCall] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- botocore lookups
@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def service_model(service: str) -> ServiceModel:
    return _session().get_service_model(service)


@functools.cache
def available_services() -> frozenset[str]:
    return frozenset(_session().get_available_services())


@functools.cache
def client_methods(service: str) -> dict[str, str]:
    """snake_case client method -> operation name."""
    return {xform_name(op): op for op in service_model(service).operation_names}


@functools.cache
def table_methods() -> dict[str, str]:
    """DynamoDB ``Table`` resource methods -> operation, from boto3's own resource model."""
    data = Path(boto3.__file__).parent / "data" / "dynamodb"
    newest = max(p for p in data.iterdir() if p.is_dir())
    model = json.loads((newest / "resources-1.json").read_text())
    table = model["resources"]["Table"]
    methods = {
        xform_name(name): action["request"]["operation"]
        for name, action in table.get("actions", {}).items()
    }
    methods["load"] = methods["reload"] = table["load"]["request"]["operation"]
    methods["batch_writer"] = "BatchWriteItem"
    return methods


SDK_SERVICE_ALIASES = {"sfn": "stepfunctions"}  # Step Functions' aws-sdk names that differ


def sdk_service(name: str) -> str:
    """The botocore service of a Step Functions ``aws-sdk:<name>:...`` integration."""
    if name in SDK_SERVICE_ALIASES:
        return SDK_SERVICE_ALIASES[name]
    for service in available_services():
        if service.replace("-", "") == name:
            return service
    raise ValueError(f"aws-sdk integration names an unknown service: {name}")


def waiter_operation(service: str, waiter: str) -> str | None:
    try:
        model = _session().get_waiter_model(service)
    except DataNotFoundError:  # a service without waiters
        return None
    names = {xform_name(name): name for name in model.waiter_names}
    if waiter not in names:
        return None
    operation: str = model.get_waiter(names[waiter]).operation
    return operation


# ---------------------------------------------------------------------------- the program
@dataclass
class Function:
    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef | None  # None: a module's top-level code
    module: Module
    cls: str | None = None  # qualified name of the class a method belongs to
    parent: Function | None = None
    bound: dict[str, set[Kind]] = field(default_factory=dict)  # parameter -> kinds from callers
    children: list[Function] = field(default_factory=list)
    _body: list[ast.AST] | None = field(default=None, repr=False, compare=False)

    @property
    def params(self) -> list[ast.arg]:
        if self.node is None:
            return []
        args = self.node.args
        every = [*args.posonlyargs, *args.args]
        return every[1:] if self.cls and not self.is_static else every

    @property
    def keyword_params(self) -> list[ast.arg]:
        return [*self.params, *(self.node.args.kwonlyargs if self.node else [])]

    @property
    def is_static(self) -> bool:
        if self.node is None:
            return False
        return any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in self.node.decorator_list
        )

    def body(self) -> list[ast.AST]:
        """This function's own nodes (nested functions and classes are their own); the analysis
        walks them again on every pass, so they are gathered once."""
        if self._body is None:
            self._body = list(self._walk_body())
        return self._body

    def _walk_body(self) -> Iterator[ast.AST]:
        roots = self.node.body if self.node else self.module.tree.body
        stack: list[ast.AST] = list(roots)
        if self.node is not None:
            stack += list(self.node.args.defaults) + [
                d for d in self.node.args.kw_defaults if d is not None
            ]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                if isinstance(node, ast.Lambda):
                    stack.append(node.body)
                else:
                    stack += node.decorator_list
                continue
            yield node
            stack += list(ast.iter_child_nodes(node))


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    functions: dict[str, Function] = field(default_factory=dict)  # local name -> function
    classes: dict[str, dict[str, Function]] = field(default_factory=dict)  # class -> methods


@functools.cache
def _parse(name: str, text: str) -> ast.Module:
    # every function's analysis loads the same library modules; the trees are only read
    return ast.parse(text, name)


class Program:
    """A handler module and the library modules it imports."""

    def __init__(self, handler: Path, roots: Iterable[Path], display_root: Path) -> None:
        self.roots = [handler.parent, *roots]
        self.display_root = display_root
        self.modules: dict[str, Module] = {}
        self.functions: dict[str, Function] = {}
        self.class_attrs: dict[str, dict[str, set[Kind]]] = {}
        self.top: dict[str, Function] = {}  # module name -> its top-level code
        self.handler = self._load(handler.stem, handler)

    # ---- loading
    def _find(self, dotted: str) -> Path | None:
        for root in self.roots:
            base = root.joinpath(*dotted.split("."))
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
        return None

    def _load(self, name: str, path: Path) -> Module:
        if name in self.modules:
            return self.modules[name]
        module = Module(name, path, _parse(str(path), path.read_text()))
        self.modules[name] = module
        top = Function(f"{name}.<module>", None, module)
        self.top[name] = top
        self.functions[top.qualname] = top
        self._collect(module, module.tree.body, prefix=name, cls=None, parent=top)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
                    self._maybe_load(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(module, node)
                for alias in node.names:
                    qualified = f"{base}.{alias.name}"
                    module.imports[alias.asname or alias.name] = qualified
                    if not self._maybe_load(qualified):
                        self._maybe_load(base)
        return module

    def _absolute(self, module: Module, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = module.name.split(".")
        package = package[: len(package) - node.level]
        return ".".join([*package, *([node.module] if node.module else [])])

    def _maybe_load(self, dotted: str) -> bool:
        path = self._find(dotted)
        if path is None:
            return False
        self._load(dotted, path)
        return True

    def _collect(
        self, module: Module, body: list[ast.stmt], prefix: str, cls: str | None, parent: Function
    ) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                fn = Function(f"{prefix}.{node.name}", node, module, cls=cls, parent=parent)
                self.functions[fn.qualname] = fn
                parent.children.append(fn)
                if cls is not None:
                    module.classes[cls.rsplit(".", 1)[1]][node.name] = fn
                elif parent.node is None:
                    module.functions[node.name] = fn
                self._collect(module, node.body, fn.qualname, cls=None, parent=fn)
            elif isinstance(node, ast.ClassDef) and parent.node is None:
                qualified = f"{prefix}.{node.name}"
                module.classes[node.name] = {}
                self.class_attrs.setdefault(qualified, {})
                self._collect(module, node.body, qualified, cls=qualified, parent=parent)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                inner = [n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)]
                self._collect(module, inner, prefix, cls, parent)

    # ---- names
    def qualified(self, module: Module, expr: ast.expr) -> str | None:
        """``a.b.c`` as a qualified name through the module's imports."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        head = module.imports.get(expr.id)
        if head is None:
            if expr.id in module.functions or expr.id in module.classes:
                head = f"{module.name}.{expr.id}"
            else:
                return None
        return ".".join([head, *reversed(parts)])

    def lookup_function(self, qualified: str) -> Function | None:
        if qualified in self.functions:
            return self.functions[qualified]
        module_name, _, name = qualified.rpartition(".")
        module = self.modules.get(module_name)
        if module and name in module.functions:
            return module.functions[name]
        return None

    def lookup_class(self, qualified: str) -> str | None:
        module_name, _, name = qualified.rpartition(".")
        module = self.modules.get(module_name)
        if module and name in module.classes:
            return f"{module.name}.{name}"
        return None

    def method(self, class_name: str, name: str) -> Function | None:
        module_name, _, short = class_name.rpartition(".")
        return self.modules[module_name].classes[short].get(name)

    def annotation_kinds(self, module: Module, annotation: ast.expr | None) -> set[Kind]:
        if annotation is None:
            return set()
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return set()
        if isinstance(annotation, ast.BinOp):
            return self.annotation_kinds(module, annotation.left) | self.annotation_kinds(
                module, annotation.right
            )
        if isinstance(annotation, ast.Subscript):
            inner = annotation.slice
            items = inner.elts if isinstance(inner, ast.Tuple) else [inner]
            return set().union(*(self.annotation_kinds(module, i) for i in items))
        qualified = self.qualified(module, annotation)
        if qualified is None:
            return set()
        if qualified.startswith("mypy_boto3_"):
            package, _, type_name = qualified.partition(".")
            service = package.removeprefix("mypy_boto3_").replace("_", "-")
            type_name = type_name.rsplit(".", 1)[-1]
            if type_name.endswith("Client"):
                return {Kind("client", service)}
            if type_name == "ServiceResource":
                return {Kind("resource", service)}
            if type_name == "Table":
                return {Kind("table", service)}
            return set()
        class_name = self.lookup_class(qualified)
        return {Kind("instance", class_name)} if class_name else set()

    # ---- kinds
    def environment(self, fn: Function) -> dict[str, set[Kind]]:
        """Names visible in ``fn`` and their kinds: the module's globals, enclosing functions'
        names, its own parameters and local assignments."""
        env: dict[str, set[Kind]] = {}
        if fn.parent is not None:
            env.update(self.environment(fn.parent))
        elif fn.node is not None:
            env.update(self.environment(self.top[fn.module.name]))
        if fn.node is not None:
            for arg in fn.keyword_params:
                kinds = self.annotation_kinds(fn.module, arg.annotation) | fn.bound.get(
                    arg.arg, set()
                )
                env[arg.arg] = kinds
            if fn.cls is not None and not fn.is_static:
                every = [*fn.node.args.posonlyargs, *fn.node.args.args]
                if every:
                    env[every[0].arg] = {Kind("instance", fn.cls)}
        for _ in range(2):  # assignments may use each other
            for node in fn.body():
                targets: list[ast.expr] = []
                value: ast.expr | None = None
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, ast.AnnAssign):
                    targets, value = [node.target], node.value
                    if isinstance(node.target, ast.Name):
                        env.setdefault(node.target.id, set()).update(
                            self.annotation_kinds(fn.module, node.annotation)
                        )
                for target in targets:
                    if isinstance(target, ast.Name) and value is not None:
                        kinds = self.kinds_of(fn, value, env)
                        if kinds:
                            env.setdefault(target.id, set()).update(kinds)
        return env

    def kinds_of(self, fn: Function, expr: ast.expr, env: dict[str, set[Kind]]) -> set[Kind]:
        if isinstance(expr, ast.Name):
            return set(env.get(expr.id, set()))
        if isinstance(expr, ast.Attribute):
            kinds: set[Kind] = set()
            for owner in self.kinds_of(fn, expr.value, env):
                if owner.kind == "instance":
                    kinds |= self.class_attrs.get(owner.name, {}).get(expr.attr, set())
            return kinds
        if isinstance(expr, ast.Call):
            qualified = self.qualified(fn.module, expr.func)
            if qualified in ("boto3.client", "boto3.resource"):
                service = _service_argument(expr)
                if service:
                    return {Kind(qualified.rsplit(".", 1)[1], service)}
            if isinstance(expr.func, ast.Attribute):
                owners = self.kinds_of(fn, expr.func.value, env)
                if expr.func.attr == "Table" and any(o.kind == "resource" for o in owners):
                    return {Kind("table", o.name) for o in owners if o.kind == "resource"}
            if qualified:
                class_name = self.lookup_class(qualified)
                if class_name:
                    return {Kind("instance", class_name)}
                callee = self.lookup_function(qualified)
                if callee is not None and callee.node is not None:
                    return self.annotation_kinds(callee.module, callee.node.returns)
        return set()

    def callees(self, fn: Function, call: ast.Call, env: dict[str, set[Kind]]) -> list[Function]:
        found: list[Function] = []
        qualified = self.qualified(fn.module, call.func)
        if qualified:
            callee = self.lookup_function(qualified)
            if callee is not None:
                found.append(callee)
            class_name = self.lookup_class(qualified)
            if class_name:
                init = self.method(class_name, "__init__")
                if init is not None:
                    found.append(init)
        if isinstance(call.func, ast.Attribute):
            for owner in self.kinds_of(fn, call.func.value, env):
                if owner.kind == "instance":
                    method = self.method(owner.name, call.func.attr)
                    if method is not None:
                        found.append(method)
        if isinstance(call.func, ast.Name):  # a nested function of an enclosing scope
            scope: Function | None = fn
            while scope is not None:
                found += [c for c in scope.children if c.qualname.endswith(f".{call.func.id}")]
                scope = scope.parent
        return found

    def propagate(self) -> None:
        """Let kinds flow from arguments to parameters and into ``self`` attributes."""
        changed = True
        while changed:
            changed = False
            for fn in list(self.functions.values()):
                env = self.environment(fn)
                for node in fn.body():
                    if isinstance(node, ast.Call):
                        changed |= self._bind(fn, node, env)
                    elif fn.cls is not None and isinstance(node, ast.Assign):
                        changed |= self._attributes(fn, node, env)

    def _bind(self, fn: Function, call: ast.Call, env: dict[str, set[Kind]]) -> bool:
        changed = False
        for callee in self.callees(fn, call, env):
            params = [p.arg for p in callee.params]
            pairs = list(zip(params, call.args, strict=False))
            pairs += [(k.arg, k.value) for k in call.keywords if k.arg]
            for name, value in pairs:
                if isinstance(value, ast.Starred):
                    continue
                kinds = self.kinds_of(fn, value, env)
                known = callee.bound.setdefault(name, set())
                if not kinds <= known:
                    known |= kinds
                    changed = True
        return changed

    def _attributes(self, fn: Function, node: ast.Assign, env: dict[str, set[Kind]]) -> bool:
        changed = False
        assert fn.cls is not None
        for target in node.targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and Kind("instance", fn.cls) in env.get(target.value.id, set())
            ):
                kinds = self.kinds_of(fn, node.value, env)
                known = self.class_attrs.setdefault(fn.cls, {}).setdefault(target.attr, set())
                if not kinds <= known:
                    known |= kinds
                    changed = True
        return changed

    # ---- what runs
    def reachable(self) -> list[Function]:
        """Everything the handler module can run: its own code (routes are called by the
        event handler, not by name), and what that code calls or hands on, transitively."""
        start = [f for f in self.functions.values() if f.module is self.handler]
        start += list(self.top.values())
        seen: dict[str, Function] = {}
        stack = start
        while stack:
            fn = stack.pop()
            if fn.qualname in seen:
                continue
            seen[fn.qualname] = fn
            if fn.node is not None:
                stack += fn.children  # closures defined here run when this does
            env = self.environment(fn)
            for node in fn.body():
                if isinstance(node, ast.Call):
                    stack += self.callees(fn, node, env)
                elif isinstance(node, ast.Name | ast.Attribute):  # a function handed on
                    qualified = self.qualified(fn.module, node)
                    callee = self.lookup_function(qualified) if qualified else None
                    if callee is not None:
                        stack.append(callee)
        return list(seen.values())

    def where(self, fn: Function, node: ast.AST) -> str:
        path = fn.module.path
        shown = (
            path.relative_to(self.display_root) if path.is_relative_to(self.display_root) else path
        )
        return f"{shown}:{getattr(node, 'lineno', 0)}"


def _service_argument(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    for keyword in call.keywords:
        if keyword.arg == "service_name" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return None


def _constant(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def imported_packages(handler: Path, library_roots: Iterable[Path]) -> dict[str, str]:
    """Top-level packages the handler and the library modules it loads import when they run
    (``if TYPE_CHECKING:`` imports excluded): package -> first place that imports it."""
    program = Program(handler, library_roots, handler.parents[2])
    found: dict[str, str] = {}
    for module in program.modules.values():
        typing_only = {
            id(inner)
            for node in ast.walk(module.tree)
            if isinstance(node, ast.If) and ast.unparse(node.test) in _TYPE_CHECKING
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(module.tree):
            if id(node) in typing_only:
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "__future__":
                    found.setdefault(top, f"{module.path.name}:{getattr(node, 'lineno', 0)}")
    return found


_TYPE_CHECKING = {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def analyse(handler: Path, library_roots: Iterable[Path], display_root: Path) -> Report:
    """The AWS operations ``handler`` (a Lambda function's ``app.py``) and the library code it
    runs can call."""
    program = Program(handler, library_roots, display_root)
    program.propagate()
    report = Report(modules=sorted(program.modules))
    seen: set[tuple[str, str]] = set()

    def add(service: str, operation: str, where: str) -> None:
        if (service, operation) not in seen:
            seen.add((service, operation))
            report.calls.append(ApiCall(service, operation, where))

    for fn in program.reachable():
        env = program.environment(fn)
        for node in fn.body():
            if not isinstance(node, ast.Call):
                continue
            where = program.where(fn, node)
            qualified = program.qualified(fn.module, node.func)
            if qualified in POWERTOOLS_CALLS:
                service, operations = POWERTOOLS_CALLS[qualified]
                for operation in operations:
                    add(service, operation, where)
                continue
            if not isinstance(node.func, ast.Attribute):
                continue
            method = node.func.attr
            for owner in program.kinds_of(fn, node.func.value, env):
                for owner_service, found in _operations(owner, method, node):
                    if found is None:
                        report.unmapped.append(Unmapped(owner_service, method, where))
                    else:
                        add(owner_service, found, where)
    return report


def _operations(owner: Kind, method: str, call: ast.Call) -> list[tuple[str, str | None]]:
    """The operations ``owner.method(...)`` performs (``None``: not a known operation)."""
    service = owner.name
    if owner.kind == "client":
        if method in LOCAL_METHODS:
            return []
        if method == "get_paginator":
            name = _constant(call)
            return [(service, client_methods(service).get(name) if name else None)]
        if method == "get_waiter":
            name = _constant(call)
            return [(service, waiter_operation(service, name) if name else None)]
        if (service, method) in INJECTED_METHODS:
            return [(service, op) for op in INJECTED_METHODS[(service, method)]]
        return [(service, client_methods(service).get(method))]
    if owner.kind == "table":
        return [(service, table_methods().get(method))]
    if owner.kind == "resource":
        if method == "Table":  # builds a handle: no request
            return []
        return [(service, None)]
    return []
