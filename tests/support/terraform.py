"""Evaluates the Terraform stack's expressions the way ``terraform plan`` would, for tests.

The google provider cannot be downloaded here, so ``terraform plan`` never runs in tests.
This walks python-hcl2's syntax tree of infra/terraform and evaluates the subset of HCL
the stack uses (variable and local references, ``each``, literals, string templates,
objects and tuples, conditionals, arithmetic and comparisons, ``for`` expressions and a
handful of functions). Anything outside that subset raises :class:`UnsupportedHclError`, so an
edit that uses a new construct fails the tests until the evaluator learns it, instead of
slipping past them.

Resource and data-source attributes are only known after apply; they evaluate to
:class:`Unknown` and render as ``<address>`` placeholders in strings, which is enough to
tell a string setting from a number that would not parse.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
from lark import Token, Tree

from shared.config import ParseLimits, Settings

TF_DIR = Path(__file__).resolve().parents[2] / "infra" / "terraform"

# Roots of references whose values exist only after apply.
_RESOURCE_ROOT = re.compile(r"^(google|google-beta|archive|data)(_|$)")


class UnsupportedHclError(Exception):
    """The expression uses HCL this evaluator does not understand."""


@dataclass(frozen=True)
class Unknown:
    """A value Terraform knows only after apply (a resource or data-source attribute)."""

    address: str

    def __str__(self) -> str:
        return f"<{self.address}>"


@dataclass
class Block:
    """A block of the stack: its labels, attributes (syntax trees) and nested blocks."""

    kind: str
    labels: tuple[str, ...]
    attributes: dict[str, Tree[Token]] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def block(self, kind: str) -> Block:
        """The single nested block of ``kind``."""
        found = [b for b in self.blocks if b.kind == kind]
        if len(found) != 1:
            raise LookupError(f"{self.kind} {self.labels}: {len(found)} {kind} blocks")
        return found[0]


def _children(tree: Tree[Token]) -> list[Any]:
    """The meaningful children of a node: no newlines, comments or punctuation."""
    return [
        child
        for child in tree.children
        if not (isinstance(child, Tree) and child.data == "new_line_or_comment")
        and not (isinstance(child, Token) and child.type in _PUNCTUATION)
        and child is not None
    ]


_PUNCTUATION = {
    "LPAR",
    "RPAR",
    "LBRACE",
    "RBRACE",
    "LSQB",
    "RSQB",
    "COMMA",
    "DOT",
    "EQ",
    "COLON",
    "QMARK",
    "DBLQUOTE",
    "INTERP_START",
    "FOR",
    "IN",
    "IF",
    "FOR_OBJECT_ARROW",
}


def _name(node: Any) -> str:
    """The text of an identifier, keyword or string label."""
    if isinstance(node, Token):
        return str(node)
    if node.data in {"identifier", "keyword", "literal_value"}:
        return str(node.children[0])
    if node.data == "string":
        parts = _children(node)
        if all(isinstance(p.children[0], Token) for p in parts):
            return "".join(_unescape(str(p.children[0])) for p in parts)
    raise UnsupportedHclError(f"not a name: {node.data}")


def _unescape(chars: str) -> str:
    """Resolve the escapes of a quoted HCL string's literal characters."""
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in escapes:
            raise UnsupportedHclError(f"string escape \\{key}")
        return escapes[key]

    return re.sub(r"\\(.)", replace, chars)


def _body(tree: Tree[Token], kind: str, labels: tuple[str, ...]) -> Block:
    """Collect the attributes and nested blocks of a block body."""
    block = Block(kind, labels)
    for item in _children(tree):
        if item.data == "attribute":
            name, value = _children(item)
            block.attributes[_name(name)] = value
        elif item.data == "block":
            parts = _children(item)
            body = parts[-1]
            names = tuple(_name(p) for p in parts[:-1])
            block.blocks.append(_body(body, names[0], names[1:]))
        else:
            raise UnsupportedHclError(f"body item {item.data}")
    return block


def parse_file(path: Path) -> Block:
    """Parse one HCL file (a .tf or .tfvars) into its top-level body."""
    return _body(_children(hcl2.parses_to_tree(path.read_text()))[0], "file", (path.name,))


@dataclass
class Stack:
    """The top-level blocks of every .tf file in a directory."""

    blocks: list[Block]

    @classmethod
    def load(cls, directory: Path = TF_DIR) -> Stack:
        """Parse every .tf file of ``directory``."""
        blocks: list[Block] = []
        for path in sorted(directory.glob("*.tf")):
            blocks.extend(parse_file(path).blocks)
        return cls(blocks)

    def variables(self) -> dict[str, Block]:
        """Variable blocks by name."""
        return {b.labels[0]: b for b in self.blocks if b.kind == "variable"}

    def locals(self) -> dict[str, Tree[Token]]:
        """Every local's expression, over all ``locals`` blocks."""
        found: dict[str, Tree[Token]] = {}
        for block in self.blocks:
            if block.kind == "locals":
                found.update(block.attributes)
        return found

    def resource(self, rtype: str, name: str) -> Block:
        """One resource block."""
        for block in self.blocks:
            if block.kind == "resource" and block.labels == (rtype, name):
                return block
        raise LookupError(f"resource {rtype}.{name} is not declared")

    def of_kind(self, kind: str, rtype: str) -> dict[str, Block]:
        """Blocks of one kind (``resource``/``data``) and type, by name."""
        return {b.labels[1]: b for b in self.blocks if b.kind == kind and b.labels[0] == rtype}


def tfvars(path: Path) -> dict[str, Tree[Token]]:
    """The assignments of a .tfvars file, as expressions."""
    return parse_file(path).attributes


class Evaluator:
    """Evaluates expressions of one stack for one set of input variables.

    Args:
        stack: The parsed stack.
        inputs: Variable values given by the caller (a .tfvars file, ``-var``); every other
            variable takes its default, and one without a default must be given.
    """

    def __init__(self, stack: Stack, inputs: Mapping[str, Any]) -> None:
        self.stack = stack
        declared = stack.variables()
        unknown = set(inputs) - set(declared)
        if unknown:
            raise LookupError(f"values for undeclared variables: {sorted(unknown)}")
        self.variables: dict[str, Any] = {}
        for name, block in declared.items():
            if name in inputs:
                self.variables[name] = inputs[name]
            elif "default" in block.attributes:
                self.variables[name] = self.evaluate(block.attributes["default"])
            else:
                raise LookupError(f"variable {name} has no default and no value was given")
        self._local_trees = stack.locals()
        self._locals: dict[str, Any] = {}

    def validate_variables(self) -> None:
        """Check every variable's ``validation`` conditions, as ``terraform plan`` does."""
        for name, block in self.stack.variables().items():
            for validation in (b for b in block.blocks if b.kind == "validation"):
                if self.evaluate(validation.attributes["condition"]) is not True:
                    message = self.evaluate(validation.attributes["error_message"])
                    raise ValueError(f"var.{name}: {message}")

    def local(self, name: str) -> Any:
        """The value of ``local.<name>``."""
        if name not in self._locals:
            if name not in self._local_trees:
                raise LookupError(f"local.{name} is not defined")
            self._locals[name] = self.evaluate(self._local_trees[name])
        return self._locals[name]

    def evaluate(self, tree: Any, scope: Mapping[str, Any] | None = None) -> Any:
        """The value of one expression; ``scope`` holds ``each`` and ``for`` variables."""
        return _Walk(self, dict(scope or {})).value(tree)


class _Walk:
    """One evaluation: a tree walk with its scope of bound names."""

    def __init__(self, evaluator: Evaluator, scope: dict[str, Any]) -> None:
        self.evaluator = evaluator
        self.scope = scope

    def value(self, node: Any) -> Any:
        if isinstance(node, Token):
            raise UnsupportedHclError(f"token {node.type} {node!s}")
        handler = getattr(self, f"_{node.data}", None)
        if handler is None:
            raise UnsupportedHclError(f"HCL construct {node.data}")
        return handler(node)

    # -- terms ---------------------------------------------------------------------------

    def _expr_term(self, node: Tree[Token]) -> Any:
        (inner,) = _children(node)
        return self.value(inner)

    def _int_lit(self, node: Tree[Token]) -> int:
        return int(str(node.children[0]))

    def _float_lit(self, node: Tree[Token]) -> float:
        return float(str(node.children[0]))

    def _literal_value(self, node: Tree[Token]) -> Any:
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _string(self, node: Tree[Token]) -> Any:
        parts = [self._string_part(part) for part in _children(node)]
        if len(parts) == 1 and not isinstance(parts[0], str):
            # "${x}" alone keeps x's type, as in Terraform.
            return parts[0]
        if any(isinstance(p, Unknown) for p in parts):
            return Unknown(
                "".join(p.address if isinstance(p, Unknown) else _template_text(p) for p in parts)
            )
        return "".join(_template_text(p) for p in parts)

    def _string_part(self, node: Tree[Token]) -> Any:
        (inner,) = node.children
        if isinstance(inner, Token):
            if inner.type == "STRING_CHARS":
                return _unescape(str(inner))
            if inner.type == "ESCAPED_INTERPOLATION":
                return str(inner)[1:]
            raise UnsupportedHclError(f"string part {inner.type}")
        if inner.data != "interpolation":
            raise UnsupportedHclError(f"template directive {inner.data}")
        (expression,) = _children(inner)
        value = self.value(expression)
        return value if isinstance(value, Unknown) else _Interpolated(value)

    def _tuple(self, node: Tree[Token]) -> list[Any]:
        return [self.value(item) for item in _children(node)]

    def _object(self, node: Tree[Token]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for element in _children(node):
            key_node, value_node = _children(element)
            (key_expr,) = _children(key_node)
            key = self._object_key(key_expr)
            result[key] = self.value(value_node)
        return result

    def _object_key(self, node: Any) -> str:
        # A bare identifier key is its own name; anything else is an expression.
        inner = node
        while isinstance(inner, Tree) and inner.data == "expr_term":
            (inner,) = _children(inner)
        if isinstance(inner, Tree) and inner.data in {"identifier", "keyword"}:
            return _name(inner)
        key = self.value(node)
        if not isinstance(key, str):
            raise UnsupportedHclError(f"object key {key!r}")
        return key

    def _identifier(self, node: Tree[Token]) -> Any:
        name = _name(node)
        if name in self.scope:
            return self.scope[name]
        if name in {"var", "local", "each"} or _RESOURCE_ROOT.match(name):
            return _Root(name)
        raise UnsupportedHclError(f"reference to {name}")

    # -- references ----------------------------------------------------------------------

    def _get_attr_expr_term(self, node: Tree[Token]) -> Any:
        target, attr = _children(node)
        base = self.value(target)
        (name_node,) = _children(attr)
        return self._attribute(base, _name(name_node))

    def _attribute(self, base: Any, name: str) -> Any:
        if isinstance(base, _Root):
            return base.child(self.evaluator, name, self.scope)
        if isinstance(base, Unknown):
            return Unknown(f"{base.address}.{name}")
        if isinstance(base, dict):
            if name not in base:
                raise LookupError(f"no attribute {name} in {sorted(base)}")
            return base[name]
        raise UnsupportedHclError(f"attribute {name} of {type(base).__name__}")

    def _index_expr_term(self, node: Tree[Token]) -> Any:
        target, index = _children(node)
        base = self.value(target)
        if index.data != "braces_index":
            raise UnsupportedHclError(f"index {index.data}")
        (key_node,) = _children(index)
        key = self.value(key_node)
        if isinstance(base, _Root):
            base = base.resolved(self.evaluator, self.scope)
        if isinstance(base, Unknown) or isinstance(key, Unknown):
            return Unknown(f"{_address(base)}[{_address(key)}]")
        if isinstance(base, dict | list):
            return base[key]
        raise UnsupportedHclError(f"index of {type(base).__name__}")

    # -- operators -----------------------------------------------------------------------

    def _conditional(self, node: Tree[Token]) -> Any:
        condition, when_true, when_false = _children(node)
        chosen = self.value(condition)
        if not isinstance(chosen, bool):
            raise UnsupportedHclError(f"condition of type {type(chosen).__name__}: {chosen!r}")
        return self.value(when_true if chosen else when_false)

    def _binary_op(self, node: Tree[Token]) -> Any:
        left_node, term = _children(node)
        operator_node, right_node = _children(term)
        operator = str(operator_node.children[0])
        left = self.value(left_node)
        if operator in {"&&", "||"} and isinstance(left, bool):
            # Terraform evaluates both sides; so do we (both must be valid).
            right = self.value(right_node)
            return (left and right) if operator == "&&" else (left or right)
        right = self.value(right_node)
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            raise UnsupportedHclError(f"{operator} on a value known only after apply")
        operations: dict[str, Callable[[Any, Any], Any]] = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: _number(a) < _number(b),
            ">": lambda a, b: _number(a) > _number(b),
            "<=": lambda a, b: _number(a) <= _number(b),
            ">=": lambda a, b: _number(a) >= _number(b),
            "+": lambda a, b: _number(a) + _number(b),
            "-": lambda a, b: _number(a) - _number(b),
            "*": lambda a, b: _number(a) * _number(b),
            "/": lambda a, b: _number(a) / _number(b),
            "%": lambda a, b: _number(a) % _number(b),
        }
        if operator not in operations:
            raise UnsupportedHclError(f"operator {operator}")
        return operations[operator](left, right)

    def _unary_op(self, node: Tree[Token]) -> Any:
        operator, operand = node.children
        value = self.value(operand)
        if str(operator) == "!":
            if not isinstance(value, bool):
                raise UnsupportedHclError(f"! on {value!r}")
            return not value
        return -_number(value)

    # -- for expressions -----------------------------------------------------------------

    def _for_tuple_expr(self, node: Tree[Token]) -> list[Any]:
        intro, body, *condition = _children(node)
        return [self.value(body) for _ in self._iterations(intro, condition)]

    def _for_object_expr(self, node: Tree[Token]) -> dict[str, Any]:
        parts = _children(node)
        if any(isinstance(p, Token) and p.type == "ELLIPSIS" for p in parts):
            raise UnsupportedHclError("grouping (...) in a for expression")
        intro, key_node, value_node, *condition = parts
        result: dict[str, Any] = {}
        for _ in self._iterations(intro, condition):
            result[self.value(key_node)] = self.value(value_node)
        return result

    def _iterations(self, intro: Tree[Token], condition: list[Any]) -> Iterator[dict[str, Any]]:
        names = [
            _name(n) for n in _children(intro) if isinstance(n, Tree) and n.data == "identifier"
        ]
        (collection_node,) = [
            n for n in _children(intro) if not (isinstance(n, Tree) and n.data == "identifier")
        ]
        collection = self.value(collection_node)
        if isinstance(collection, dict):
            pairs: list[tuple[Any, Any]] = list(collection.items())
        elif isinstance(collection, list):
            pairs = list(enumerate(collection))
        else:
            raise UnsupportedHclError(f"for over {type(collection).__name__}")
        outer = self.scope
        for key, item in pairs:
            bound = [item] if len(names) == 1 else [key, item]
            self.scope = {**outer, **dict(zip(names, bound, strict=True))}
            try:
                if condition:
                    (cond_node,) = _children(condition[0])
                    keep = self.value(cond_node)
                    if not isinstance(keep, bool):
                        raise UnsupportedHclError(f"for condition {keep!r}")
                    if not keep:
                        continue
                yield self.scope
            finally:
                self.scope = outer

    # -- functions -----------------------------------------------------------------------

    def _function_call(self, node: Tree[Token]) -> Any:
        parts = _children(node)
        name = _name(parts[0])
        if len(parts) > 2 or name not in _FUNCTIONS:
            raise UnsupportedHclError(f"function {name}()")
        arguments: list[Any] = []
        if len(parts) == 2:
            if any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in parts[1].children):
                raise UnsupportedHclError("argument expansion (...)")
            if name == "can":
                (expression,) = _children(parts[1])
                try:
                    self.value(expression)
                except UnsupportedHclError:
                    raise
                except Exception:
                    return False
                return True
            arguments = [self.value(a) for a in _children(parts[1])]
        return _FUNCTIONS[name](*arguments)


def _address(value: Any) -> str:
    return value.address if isinstance(value, Unknown) else json.dumps(value)


class _Interpolated:
    """A known value interpolated into a string template."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _template_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, Unknown):
        return part.address
    return tostring(part.value)


@dataclass(frozen=True)
class _Root:
    """The first name of a reference (``var``, ``local``, ``each``, a resource type)."""

    name: str
    path: tuple[str, ...] = ()

    def child(self, evaluator: Evaluator, attribute: str, scope: Mapping[str, Any]) -> Any:
        if self.name == "var":
            if attribute not in evaluator.variables:
                raise LookupError(f"var.{attribute} is not declared")
            return evaluator.variables[attribute]
        if self.name == "local":
            return evaluator.local(attribute)
        if self.name == "each":
            if "each" not in scope:
                raise UnsupportedHclError("each outside a for_each")
            return scope["each"][attribute]
        return Unknown(".".join((self.name, *self.path, attribute)))

    def resolved(self, evaluator: Evaluator, scope: Mapping[str, Any]) -> Any:
        if self.name in {"var", "local", "each"}:
            raise UnsupportedHclError(f"{self.name} indexed directly")
        return Unknown(".".join((self.name, *self.path)))


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return value


def tostring(value: Any) -> str:
    """Terraform's ``tostring`` (and string interpolation) of a primitive value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Unknown):
        return str(value)
    raise TypeError(f"tostring of {value!r}")


def _merge(*maps: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for item in maps:
        if item is None:
            continue
        if not isinstance(item, dict):
            raise TypeError(f"merge of {item!r}")
        merged.update(item)
    return merged


def _coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None and value != "":
            return value
    raise ValueError("coalesce: no non-null, non-empty argument")


def _jsonencode(value: Any) -> str:
    if _contains_unknown(value):
        raise UnsupportedHclError("jsonencode of a value known only after apply")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _contains_unknown(value: Any) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return False


def _trimsuffix(text: Any, suffix: str) -> Any:
    if isinstance(text, Unknown):
        return Unknown(f"trimsuffix({text.address})")
    return text.removesuffix(suffix) if isinstance(text, str) else _fail("trimsuffix", text)


def _replace(text: Any, old: str, new: str) -> Any:
    if isinstance(text, Unknown):
        return Unknown(f"replace({text.address})")
    if old.startswith("/") and old.endswith("/"):
        raise UnsupportedHclError("replace with a regular expression")
    return text.replace(old, new)


def _regex(pattern: str, text: str) -> Any:
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"regex {pattern!r} does not match {text!r}")
    return match.group(0)


def _fail(function: str, value: Any) -> Any:
    raise TypeError(f"{function} of {value!r}")


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "merge": _merge,
    "tostring": tostring,
    "tonumber": lambda v: v if isinstance(v, int | float) else json.loads(v),
    "jsonencode": _jsonencode,
    "coalesce": _coalesce,
    "trimsuffix": _trimsuffix,
    "trimspace": lambda v: v.strip(),
    "replace": _replace,
    "min": lambda *v: min(_number(x) for x in v),
    "max": lambda *v: max(_number(x) for x in v),
    "floor": lambda v: math.floor(_number(v)),
    "ceil": lambda v: math.ceil(_number(v)),
    "contains": lambda items, value: value in items,
    "alltrue": lambda items: all(item is True for item in items),
    "regex": _regex,
    "toset": lambda items: sorted(set(items)),
    "concat": lambda *lists: [item for items in lists for item in items],
    "distinct": lambda items: list(dict.fromkeys(items)),
    "keys": lambda item: sorted(item),
    "length": len,
    "can": lambda: True,  # handled in _function_call: needs the unevaluated argument
}


def environment(value: Mapping[str, Any]) -> dict[str, str]:
    """A function's ``environment_variables`` map as the deployed process sees it.

    Terraform converts the map's values to strings; a null value or a nested value is
    an error there, and so it is here.
    """
    rendered: dict[str, str] = {}
    for key, item in value.items():
        if item is None or isinstance(item, dict | list):
            raise TypeError(f"{key}: {item!r} is not a string")
        rendered[key] = tostring(item)
    return rendered


# ---------------------------------------------------------------------------------------------
# The deployed configuration: what each function's process reads
# ---------------------------------------------------------------------------------------------

STACK = Stack.load()
PROJECT = {"project_id": "ragline-test-1"}


def _example_values() -> dict[str, Any]:
    bare = Evaluator(STACK, PROJECT)
    return {
        name: bare.evaluate(expression)
        for name, expression in tfvars(TF_DIR / "terraform.tfvars.example").items()
    }


CASES: dict[str, dict[str, Any]] = {
    "defaults": PROJECT,
    "tfvars.example": _example_values(),
    "optional values set": {
        **PROJECT,
        "answer_min_similarity": 0.35,
        "openai_base_url": "https://llm.example.com/v1",
        "bootstrap_owners": ["owner@example.com"],
        "cors_origins": ["https://app.example.com"],
        "auth_iap_audience": "/projects/1/global/backendServices/2",
    },
}


def rendered_environments(inputs: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Function key -> the environment Terraform gives it, for these variable values."""
    evaluator = Evaluator(STACK, inputs)
    evaluator.validate_variables()
    function = STACK.resource("google_cloudfunctions2_function", "function")
    expression = function.block("service_config").attributes["environment_variables"]
    return {
        key: environment(evaluator.evaluate(expression, {"each": {"key": key, "value": spec}}))
        for key, spec in evaluator.local("functions").items()
    }


def load_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> tuple[Settings, ParseLimits]:
    """Settings and parse limits of a process whose environment is exactly ``env``."""
    for name in list(os.environ):
        if name.startswith(("RAGLINE_", "OPENAI_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # _env_file=None: a developer's .env must not fill in what Terraform left out.
    return Settings(_env_file=None), ParseLimits(_env_file=None)  # type: ignore[call-arg]
