"""The target-expression parser evaluates the lab function and refuses anything else."""

from __future__ import annotations

import math

import pytest
import torch

from fnn_tui.core.expr import ExpressionError, parse_expression


def test_lab_function_values() -> None:
    f = parse_expression("log2(x) + cos(pi*x/2)")
    xs = torch.tensor([1.0, 2.0, 3.0, 4.0, 16.0], dtype=torch.float64)
    expected = [math.log2(x) + math.cos(math.pi * x / 2) for x in xs.tolist()]
    assert f(xs).tolist() == pytest.approx(expected, abs=1e-12)


def test_operators_constants_and_functions() -> None:
    f = parse_expression("-x**2 / 4 + sqrt(abs(x)) * e - exp(0) + log10(100) + sin(0) + tan(0) + log(e)")
    x = torch.tensor([2.0], dtype=torch.float64)
    assert f(x).item() == pytest.approx(-1 + math.sqrt(2) * math.e - 1 + 2 + 0 + 0 + 1)
    assert parse_expression("3").__call__(x).tolist() == [3.0]


@pytest.mark.parametrize(
    "text",
    ["__import__('os')", "x.__class__", "open('f')", "lambda: 1", "[x]", "x if x else 1", "'a'", "foo(x)", "y + 1",
     "x < 2", "log(x, 2)", "(1).real", "x @ x", "True"],
)
def test_rejects_everything_outside_the_grammar(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text)


def test_syntax_error_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="not a valid expression"):
        parse_expression("log2(x")
