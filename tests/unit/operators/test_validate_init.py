"""The operators' constructors pass the rules of apache/airflow's ``validate-operators-init`` check.

The rules (``scripts/ci/prek/validate_operators_init.py`` in apache/airflow), checked
on the AST of every operator class in ``airflow_provider_metronome/operators``:

* each template field is assigned in ``__init__`` as ``self.<name> = <name>`` from
  the argument of the same name, or forwarded as ``super().__init__(<name>=<name>)``;
* no other assignment to ``self.<template field>`` anywhere in ``__init__``;
* no logic on a template field in ``__init__`` (its value is a template until
  ``execute``): a read of it is allowed only in those assignments, in
  ``<name> or <default>`` and in ``<name> is None`` / ``<name> is not None``.

This project adds: arguments are keyword-only, and ``__init__`` does no I/O (it calls
nothing but ``super().__init__``, ``isinstance`` and exception constructors).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

OPERATORS = Path(__file__).resolve().parents[3] / "airflow_provider_metronome" / "operators"
ALLOWED_CALLS = {"super", "__init__", "isinstance", "ValueError", "TypeError"}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _template_fields(cls: ast.ClassDef) -> list[str]:
    for item in cls.body:
        target = item.targets[0] if isinstance(item, ast.Assign) else getattr(item, "target", None)
        if isinstance(target, ast.Name) and target.id == "template_fields":
            value = item.value  # type: ignore[attr-defined]
            assert isinstance(value, ast.Tuple), f"{cls.name}.template_fields must be a tuple literal"
            return [e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _is_none_check(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Compare)
        and len(node.ops) == 1
        and isinstance(node.ops[0], (ast.Is, ast.IsNot))
        and isinstance(node.comparators[0], ast.Constant)
        and node.comparators[0].value is None
    )


def _is_super_init(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "__init__"
        and isinstance(node.func.value, ast.Call)
        and _name(node.func.value.func) == "super"
    )


def check_class(cls: ast.ClassDef) -> list[str]:
    """Every violation of the rules in ``cls`` (empty when it passes)."""
    fields = _template_fields(cls)
    init = next((i for i in cls.body if isinstance(i, ast.FunctionDef) and i.name == "__init__"), None)
    if init is None:
        return []
    problems: list[str] = []
    args = init.args
    if [a.arg for a in args.posonlyargs + args.args] != ["self"] or args.vararg is not None:
        problems.append(f"{cls.name}.__init__ takes arguments by position")
    params = {a.arg for a in args.kwonlyargs}
    sanctioned: set[int] = set()
    assigned: set[str] = set()

    def mark(value: ast.expr | None, field: str) -> bool:
        if isinstance(value, ast.BoolOp) and isinstance(value.op, ast.Or):
            value = value.values[0]
        if isinstance(value, ast.Name) and value.id == field:
            sanctioned.add(id(value))
            return True
        return False

    for stmt in init.body:  # assignments that count must run on every path
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            attr = _self_attr(stmt.targets[0])
            if attr in fields and mark(stmt.value, attr):
                assigned.add(attr)
        if isinstance(stmt, ast.Expr) and _is_super_init(stmt.value):
            for kw in stmt.value.keywords:  # type: ignore[attr-defined]
                if kw.arg in fields and mark(kw.value, kw.arg):
                    assigned.add(kw.arg)
    for node in ast.walk(init):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                attr = _self_attr(target)
                plain = isinstance(node.value, ast.Name) and node.value.id == attr
                defaulted = isinstance(node.value, ast.BoolOp) and _name(node.value.values[0]) == attr
                if attr in fields and not (plain or defaulted):
                    problems.append(f"{cls.name}: self.{attr} is not assigned from the argument {attr}")
        elif _is_none_check(node):
            sanctioned.add(id(node.left))  # type: ignore[attr-defined]
        elif isinstance(node, ast.Call) and _name(node.func) not in ALLOWED_CALLS:
            problems.append(f"{cls.name}.__init__ calls {_name(node.func) or ast.unparse(node.func)}()")
    for field in fields:
        if field not in params and field not in assigned:
            problems.append(f"{cls.name}: template field {field!r} is no argument of __init__")
        elif field not in assigned:
            problems.append(f"{cls.name}: template field {field!r} is not stored as self.{field} = {field}")
    for node in ast.walk(init):
        loaded = isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in fields
        if loaded and node.id in params and id(node) not in sanctioned:  # type: ignore[attr-defined]
            problems.append(f"{cls.name}.__init__ line {node.lineno}: logic on template field {node.id}")
        attr = _self_attr(node)
        if attr in fields and isinstance(node.ctx, ast.Load) and id(node) not in sanctioned:  # type: ignore[attr-defined]
            problems.append(f"{cls.name}.__init__ line {node.lineno}: logic on template field self.{attr}")
    return problems


def operator_classes(source: str) -> list[ast.ClassDef]:
    return [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef) and any(_name(b).endswith("BaseOperator") for b in node.bases)
    ]


def _module_ids() -> list[str]:
    return sorted(p.name for p in OPERATORS.glob("*.py") if operator_classes(p.read_text()))


def test_every_operator_module_is_checked() -> None:
    assert {"avalara.py", "base.py", "billing_config.py"} <= set(_module_ids())


@pytest.mark.parametrize("module", _module_ids())
def test_operator_constructors_follow_the_rules(module: str) -> None:
    problems = [p for cls in operator_classes((OPERATORS / module).read_text()) for p in check_class(cls)]
    assert problems == []


def test_the_check_catches_what_the_old_constructors_did() -> None:
    old = textwrap.dedent(
        """
        class Old(BaseOperator):
            template_fields = ("conn_id", "sql", "dry_run", "name")

            def __init__(self, sql, *, conn_id=None, dry_run=False, name="x", **kwargs):
                super().__init__(**kwargs)
                if sql is not None and not conn_id:
                    raise ValueError("sql needs conn_id")
                self.sql = sql
                self.conn_id = conn_id
                self.dry_run_enabled = dry_run
                self.name = name.strip()
                self.hook = SomeHook(conn_id="x").get_conn()
        """
    )
    problems = check_class(operator_classes(old)[0])
    assert "Old.__init__ takes arguments by position" in problems
    assert any("logic on template field conn_id" in p for p in problems)
    assert "Old: template field 'dry_run' is not stored as self.dry_run = dry_run" in problems
    assert "Old: self.name is not assigned from the argument name" in problems
    assert any("calls get_conn()" in p for p in problems)
