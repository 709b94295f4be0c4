"""The Cayley convolution's LU factorisations, solves and inverses run with one CPU thread.

On the project's CPU (torch 2.14.1, oneMKL 2024.2) a batched ``lu_factor_ex`` of 512 x 512 matrices
with two threads returned out-of-range pivots in some runs (oneMKL: "Parameter 6 was incorrect on
entry to CLASWP"), which the training forward's ``lu_solve`` refused: the layer computes them with
one thread, and the caller's thread count is back afterwards.
"""

from __future__ import annotations

import pytest
import torch

from critics.layers import CayleyConv2d


def test_factorisations_run_with_one_thread_and_the_callers_count_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[int]] = {"lu_factor_ex": [], "lu_solve": [], "inv_ex": []}
    for name in seen:
        real = getattr(torch.linalg, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):  # noqa: ANN001, ANN202
            seen[_name].append(torch.get_num_threads())
            return _real(*args, **kwargs)

        monkeypatch.setattr(torch.linalg, name, wrapped)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layer = CayleyConv2d(8, 8, 3).train()
        x = torch.randn(2, 8, 6, 6, requires_grad=True)
        layer(x).square().sum().backward()  # training: LU factors, a solve, the adjoint solve
        layer.eval()
        with torch.no_grad():
            layer(x)  # eval: the explicit inverse
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert all(seen.values()), seen
    assert {n for counts in seen.values() for n in counts} == {1}
