"""Safe evaluation of a preset's target expression such as ``log2(x) + cos(pi*x/2)``.

User text is never handed to ``eval``: it is parsed with :mod:`ast` and only a small
whitelist of node types, names and functions is accepted. The compiled expression
evaluates element-wise on a torch tensor (the data) or a numpy array (a preset's check):
torch is imported only when a tensor is evaluated, so reading presets does not load it.

A preset file is untrusted input, so an expression is bounded in length, paren nesting,
node count and depth BEFORE anything recursive (the parser, the checker, the evaluator)
sees it, its constants must be finite floats, and it is evaluated once at parse time under
a guard that turns arithmetic, recursion and memory errors into :class:`ExpressionError`.
"""

from __future__ import annotations

import ast
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

# the functions a target may call, by the name torch and numpy both give them
FUNCTIONS: tuple[str, ...] = ("log", "log2", "log10", "exp", "sqrt", "abs", "sin", "cos", "tan")
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)

# Limits far above any formula a lab writes (the lab function is 21 characters, 11 nodes,
# depth 5) and far below what makes Python's parser or our recursive walkers fail.
MAX_LENGTH = 400  # characters
MAX_NODES = 200  # numbers, names, operators and calls
MAX_DEPTH = 32  # nesting of parentheses and of the syntax tree
SHOWN = 40  # characters of a hostile expression quoted in a message


def shorten(text: str, limit: int = SHOWN) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, for one-line messages."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ExpressionError(ValueError):
    """The target expression is not in the allowed grammar."""


@dataclass(frozen=True)
class TargetExpression:
    """A validated target expression; call it on a tensor of x values."""

    text: str
    _tree: ast.Expression

    def __call__(self, x: Any) -> Any:
        """Evaluate the expression element-wise on ``x`` (a torch tensor or a numpy array; the
        result is of the same kind); any arithmetic, recursion or memory error is an
        :class:`ExpressionError` naming the expression."""
        lib = _library(x)
        try:
            # numpy's warnings off (torch gives nan and inf silently)
            with lib.errstate(all="ignore") if lib is not None and lib.__name__ == "numpy" else nullcontext():
                value = _evaluate(self._tree.body, x, lib)
        except ZeroDivisionError:
            raise ExpressionError(f"expected a finite value, found {shorten(self.text)!r} divides by zero") from None
        except OverflowError:
            raise ExpressionError(f"expected a finite value, found {shorten(self.text)!r} overflows") from None
        except (ArithmeticError, RecursionError, MemoryError, TypeError) as exc:
            raise ExpressionError(
                f"expected a computable expression, found {shorten(self.text)!r} ({exc.__class__.__name__})"
            ) from None
        if lib is not None and not _is_array(value):
            value = lib.full_like(x, float(value))
        return value


def parse_expression(text: str) -> TargetExpression:
    """Parse and check ``text``; raise :class:`ExpressionError` naming the first offence."""
    source = text.strip()
    _check_size(source)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, too deep to parse
        raise ExpressionError(f"expected an expression Python can parse, found {shorten(source)!r} "
                              f"({exc.__class__.__name__})") from None
    _check_tree(tree, source)
    _check(tree.body, source)
    expression = TargetExpression(text=text, _tree=tree)
    # constant parts are folded in Python floats, where 1/0 or 10.0**400 raise: one probe
    # evaluation finds them now rather than when the data set is made (x is a placeholder
    # that absorbs every operation, as a tensor would without raising)
    expression(_ARRAY)
    return expression


class _Array:
    """Stands for x in the parse-time probe: whatever it meets becomes an array again, so
    only the constant parts are computed, in Python floats, as on real data."""

    def _same(self, *_: object) -> _Array:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __neg__ = __pos__ = _same


_ARRAY = _Array()


def _library(x: Any) -> Any:
    """torch for a tensor, numpy for an array, None for the probe's placeholder."""
    if isinstance(x, _Array):
        return None
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    import numpy

    return numpy


def _is_array(value: Any) -> bool:
    return not isinstance(value, (float, int))


def _check_size(source: str) -> None:
    """Length and paren nesting, by a flat scan: nothing here can recurse."""
    if len(source) > MAX_LENGTH:
        raise ExpressionError(
            f"expected at most {MAX_LENGTH} characters, found {len(source)} ({shorten(source)!r})"
        )
    depth = deepest = 0
    for char in source:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise ExpressionError(
            f"expected at most {MAX_DEPTH} nested parentheses, found {deepest} ({shorten(source)!r})"
        )


def _check_tree(tree: ast.Expression, source: str) -> None:
    """Node count and depth, with an explicit stack, before the recursive checker runs."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(
                f"expected at most {MAX_NODES} numbers, names, operators and calls, "
                f"found more ({shorten(source)!r})"
            )
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expected nesting at most {MAX_DEPTH} deep, found deeper ({shorten(source)!r})")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node)
                     if not isinstance(child, (ast.operator, ast.unaryop, ast.expr_context)))


def _check(node: ast.AST, source: str) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"only numbers are allowed as constants, found {shorten(repr(node.value))}")
        try:
            finite = math.isfinite(float(node.value))
        except OverflowError:  # an int literal beyond the float range
            finite = False
        if not finite:
            shown = ast.get_source_segment(source, node) or repr(node.value)
            raise ExpressionError(f"expected finite numbers (|c| < 1.8e308), found {shorten(shown)}")
    elif isinstance(node, ast.Name):
        if node.id != "x" and node.id not in CONSTANTS:
            raise ExpressionError(f"unknown name {node.id!r} (allowed: x, pi, e)")
    elif isinstance(node, ast.BinOp):
        if not isinstance(node.op, _BINOPS):
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left, source)
        _check(node.right, source)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, source)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = shorten(ast.unparse(node.func))
            raise ExpressionError(
                f"call to {shown!r} is not allowed (allowed: {', '.join(sorted(FUNCTIONS))})"
            )
        if len(node.args) != 1 or node.keywords:
            raise ExpressionError(f"{node.func.id}() takes exactly one argument")
        _check(node.args[0], source)
    elif isinstance(node, ast.Attribute):
        raise ExpressionError(f"attribute access {shorten(ast.unparse(node))!r} is not allowed")
    else:
        raise ExpressionError(f"{shorten(ast.unparse(node))!r} is not allowed in a target expression")


def _evaluate(node: ast.AST, x: Any, lib: Any) -> Any:
    """The value of ``node``: a Python float where it is constant, else an array of ``lib``
    (the probe's placeholder where ``lib`` is None)."""
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return x if node.id == "x" else CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, x, lib)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, x, lib), _evaluate(node.right, x, lib)
        op = node.op
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            return left / right
        value = left**right
        if isinstance(value, complex):  # a negative constant to a fractional constant power
            return math.nan
        return value
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    arg = _evaluate(node.args[0], x, lib)
    if lib is None:
        return x
    if not _is_array(arg):
        arg = lib.full_like(x, float(arg))
    return getattr(lib, node.func.id)(arg)
