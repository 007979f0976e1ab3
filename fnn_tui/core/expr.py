"""Safe evaluation of a preset's target expression such as ``log2(x) + cos(pi*x/2)``.

User text is never handed to ``eval``: it is parsed with :mod:`ast` and only a small
whitelist of node types, names and functions is accepted. The compiled expression
evaluates element-wise on a torch tensor.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "log": torch.log,
    "log2": torch.log2,
    "log10": torch.log10,
    "exp": torch.exp,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)


class ExpressionError(ValueError):
    """The target expression is not in the allowed grammar."""


@dataclass(frozen=True)
class TargetExpression:
    """A validated target expression; call it on a tensor of x values."""

    text: str
    _tree: ast.Expression

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the expression element-wise on ``x``."""
        value = _evaluate(self._tree.body, x)
        if not isinstance(value, torch.Tensor):
            value = torch.full_like(x, float(value))
        return value


def parse_expression(text: str) -> TargetExpression:
    """Parse and check ``text``; raise :class:`ExpressionError` naming the first offence."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression ({exc.msg})") from None
    _check(tree.body)
    return TargetExpression(text=text, _tree=tree)


def _check(node: ast.AST) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"only numbers are allowed as constants, found {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id != "x" and node.id not in CONSTANTS:
            raise ExpressionError(f"unknown name {node.id!r} (allowed: x, pi, e)")
    elif isinstance(node, ast.BinOp):
        if not isinstance(node.op, _BINOPS):
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left)
        _check(node.right)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.unparse(node.func)
            raise ExpressionError(
                f"call to {shown!r} is not allowed (allowed: {', '.join(sorted(FUNCTIONS))})"
            )
        if len(node.args) != 1 or node.keywords:
            raise ExpressionError(f"{node.func.id}() takes exactly one argument")
        _check(node.args[0])
    elif isinstance(node, ast.Attribute):
        raise ExpressionError(f"attribute access {ast.unparse(node)!r} is not allowed")
    else:
        raise ExpressionError(f"{ast.unparse(node)!r} is not allowed in a target expression")


def _evaluate(node: ast.AST, x: torch.Tensor) -> torch.Tensor | float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return x if node.id == "x" else CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, x)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, x), _evaluate(node.right, x)
        op = node.op
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            return left / right
        return left**right
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    arg = _evaluate(node.args[0], x)
    if not isinstance(arg, torch.Tensor):
        arg = torch.full_like(x, float(arg))
    return FUNCTIONS[node.func.id](arg)
