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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1/0", "expected a finite value, found '1/0' divides by zero"),
        ("x + 1/(2-2)", "expected a finite value, found 'x + 1/(2-2)' divides by zero"),
        ("10.0**400", "expected a finite value, found '10.0**400' overflows"),
        ("2**100000", "expected a finite value, found '2**100000' overflows"),
        ("1e400", "expected finite numbers (|c| < 1.8e308), found 1e400"),
        ("x*" + "9" * 320, "expected finite numbers (|c| < 1.8e308), found 9999"),
        ("+".join(["x"] * 3000), "expected at most 400 characters, found 5999 ('x+x+x+"),
        ("+".join(["x"] * 150), "expected nesting at most 32 deep, found deeper"),
        ("+".join(["x*x*x*x*x*x*x*x"] * 20), "expected at most 200 numbers, names, operators and calls, found more"),
        ("(" * 500 + "x" + ")" * 500, "expected at most 400 characters, found 1001"),
        ("(" * 100 + "x" + ")" * 100, "expected at most 32 nested parentheses, found 100"),
        ("sin(" * 50 + "x" + ")" * 50, "expected at most 32 nested parentheses, found 50"),
        ("-" * 300 + "x", "expected nesting at most 32 deep, found deeper"),
        ("x\x00", "not a valid expression (source code string cannot contain null bytes)"),
    ],
)
def test_hostile_expressions_are_one_bounded_message(text: str, expected: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and len(message) < 200


def test_constant_powers_of_negatives_are_undefined_not_a_crash() -> None:
    f = parse_expression("x + (-8)**0.5")
    assert bool(torch.isnan(f(torch.tensor([1.0], dtype=torch.float64))).all())


def test_limits_leave_room_for_real_formulas() -> None:
    text = "+".join(["sin(x)*cos(x/2)"] * 20)  # 20 terms, 319 characters, about 140 nodes
    f = parse_expression(text)
    x = torch.tensor([0.5], dtype=torch.float64)
    assert f(x).item() == pytest.approx(20 * math.sin(0.5) * math.cos(0.25))


def test_a_numpy_array_gives_the_values_a_tensor_does() -> None:
    # a preset's domain check evaluates on numpy (reading presets loads no torch), the data on torch
    import numpy as np

    text = "-x**2 / 4 + sqrt(abs(x)) * e - exp(0) + log10(100) + sin(x) + tan(x/9) + log(e) + log2(x) + cos(pi*x/2)"
    f = parse_expression(text)
    xs = np.linspace(1.0, 16.0, 2001)
    on_numpy, on_torch = f(xs), f(torch.from_numpy(xs)).numpy()
    assert isinstance(on_numpy, np.ndarray) and on_numpy.shape == xs.shape
    assert np.allclose(on_numpy, on_torch, rtol=1e-14, atol=1e-14)
    assert parse_expression("3")(xs).tolist() == [3.0] * 2001


def test_division_by_x_parses_and_is_undefined_where_x_makes_it_so() -> None:
    # only constant parts are computed when the text is parsed: 1/(x-1) is a function, 1/0 not
    import numpy as np

    f = parse_expression("1/(x-1) + log(x - 2)")
    values = f(np.array([1.0, 2.0, 3.0]))
    assert not np.isfinite(values[:2]).any() and values[2] == pytest.approx(0.5)
    assert not torch.isfinite(f(torch.tensor([1.0, 2.0], dtype=torch.float64))).any()
