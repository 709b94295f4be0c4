"""The layers' fast forward forms against their straightforward definitions, in float64: the same
values and the same gradients (to 1e-12), so a speed-up never changes the function trained or
certified; and the certificate, computed from the weights the fast form uses, still bounds the
explicit Jacobian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from layer_helpers import N
from torch import nn

from critics.functional import kernel_gram
from critics.layers import CayleyConv2d, CPLConv2d, SLLConv2d, SOCConv2d
from critics.layers.cayley import rfft_frequencies
from critics.norms import fold_kernel

F64 = {"dtype": torch.float64}
TOL = {"rtol": 1e-12, "atol": 1e-12}


def _perturbed(layer: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter moved off its initialisation (biases and q included), deterministically."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer


def _values_and_grads(layer: nn.Module, forward, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``forward(x)``, and the gradients of a fixed random objective w.r.t. ``x`` and every parameter."""
    x = x.clone().requires_grad_(True)
    for p in layer.parameters():
        p.grad = None
    y = forward(x)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    ((y * w).sum() + y.square().sum()).backward()
    grads = {"input": x.grad}
    grads.update({name: p.grad for name, p in layer.named_parameters()})
    return y.detach(), grads


def _sll_reference(layer: SLLConv2d, x: torch.Tensor) -> torch.Tensor:
    r"""The block as published: :math:`x - 2\, \mathcal{C}_K^\top (\sigma(\mathcal{C}_K x + b) / t)`."""
    free = [p for p in (layer.kernel_param, layer.q_param) if p is not None]
    t = layer._scales(*free)
    p = layer.kernel_size // 2
    z = F.relu(F.conv2d(x, layer.kernel_param, layer.hidden_bias, padding=p)) / t[:, None, None]
    return x - 2.0 * F.conv_transpose2d(z, layer.kernel_param, padding=p)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SLLConv2d(4, 4, 3, **F64),
        lambda: SLLConv2d(3, 6, 3, **F64),
        lambda: SLLConv2d(4, 4, 1, **F64),
        lambda: CPLConv2d(4, 4, 3, **F64),
        lambda: CPLConv2d(3, 5, 5, **F64),
    ],
    ids=["sll-4-4-k3", "sll-3-6-k3", "sll-4-4-k1", "cpl-4-4-k3", "cpl-3-5-k5"],
)
def test_residual_blocks_symmetric_form_equals_the_published_form(make) -> None:
    layer = _perturbed(make()).train()
    x = torch.randn(3, layer.in_channels, N, N, **F64)
    fast, fast_grads = _values_and_grads(layer, layer, x)
    ref, ref_grads = _values_and_grads(layer, lambda z: _sll_reference(layer, z), x)
    torch.testing.assert_close(fast, ref, **TOL)
    assert fast_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], **TOL, msg=f"gradient of {name}")


@pytest.mark.parametrize("shape", [(5, 3, 3, 3), (4, 6, 1, 1), (3, 2, 5, 5), (2, 3, 2, 3)])
def test_kernel_gram_is_the_self_convolution_of_the_kernel(shape) -> None:
    """One GEMM summed along tap offsets equals conv2d(K, K, padding=k - 1), values and gradient."""
    kernel = torch.randn(shape, **F64, requires_grad=True)
    kh, kw = shape[-2:]
    ref = F.conv2d(kernel, kernel, padding=(kh - 1, kw - 1))  # [i, j, delta]
    fast = kernel_gram(kernel)  # [delta, i, j]
    torch.testing.assert_close(fast.permute(1, 2, 0).reshape(ref.shape), ref, **TOL)
    w = torch.randn(ref.shape, **F64)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), kernel)
    (g_fast,) = torch.autograd.grad((fast.permute(1, 2, 0).reshape(ref.shape) * w).sum(), kernel)
    torch.testing.assert_close(g_fast, g_ref, **TOL)


def _cayley_reference(layer: CayleyConv2d, x: torch.Tensor) -> torch.Tensor:
    r"""The layer as published: ``rfft2`` of the wrapped kernel, :math:`Q = (I + A)^{-1}(I - A)` by a
    solve at every ``rfft2`` frequency, applied by ``einsum``, ``irfft2``."""
    h, w = x.shape[-2:]
    k = layer.kernel_param
    v = layer.alpha * k / k.norm()
    spec = torch.fft.rfft2(fold_kernel(v, (h, w)), s=(h, w)).permute(2, 3, 0, 1)
    a = spec - spec.mH
    eye = torch.eye(a.shape[-1], dtype=a.dtype)
    q = torch.linalg.solve(eye + a, eye - a)[..., : layer.out_channels, : layer.in_channels]
    y = torch.fft.irfft2(torch.einsum("uvoi,niuv->nouv", q, torch.fft.rfft2(x)), s=(h, w))
    return y + layer.bias[:, None, None]


@pytest.mark.parametrize(
    "cin,cout,k,grid",
    [(4, 4, 3, (8, 8)), (3, 6, 3, (7, 6)), (6, 3, 2, (5, 5)), (4, 4, 5, (3, 4)), (2, 2, 3, (1, 2))],
)
def test_cayley_distinct_frequencies_equal_the_solve_at_every_frequency(cin, cout, k, grid) -> None:
    """DFT-matrix spectrum, one inverse per distinct frequency (conjugate partners filled in), one
    batched product: the same layer as the rfft2 / solve / einsum form, on even and odd grids and
    kernels larger than the grid."""
    layer = _perturbed(CayleyConv2d(cin, cout, k, **F64)).train()
    x = torch.randn(3, cin, *grid, **F64)
    ref, ref_grads = _values_and_grads(layer, lambda z: _cayley_reference(layer, z), x)
    # training: solves with the LU factors of I + A (custom backward); eval: the explicit Q
    for mode in ("train", "eval"):
        layer.train(mode == "train")
        fast, fast_grads = _values_and_grads(layer, layer, x)
        torch.testing.assert_close(fast, ref, **TOL, msg=mode)
        checked = ref_grads if mode == "train" else {"input": ref_grads["input"]}  # eval freezes the weights
        for name in checked:
            torch.testing.assert_close(fast_grads[name], ref_grads[name], **TOL, msg=f"{mode}: gradient of {name}")
    # the certificate (from the explicit Q) bounds the Jacobian of the map the training forward computes
    layer.train()
    d = cin * grid[0] * grid[1]
    jac = torch.autograd.functional.jacobian(lambda z: layer(z.view(1, cin, *grid)).reshape(-1), torch.zeros(d, **F64))
    assert layer.lipschitz_bound((cin, *grid)) >= float(torch.linalg.svdvals(jac).max()) - 1e-12


@pytest.mark.parametrize("grid", [(16, 16), (7, 5), (6, 9), (1, 1), (2, 3)])
def test_rfft_frequencies_pair_every_frequency_with_its_conjugate(grid) -> None:
    h, w = grid
    freqs = rfft_frequencies(grid)
    signal = torch.randn(h, w, **F64)
    full = torch.fft.rfft2(signal).reshape(-1)
    distinct = full[freqs.index]
    rebuilt = torch.cat((distinct, distinct[freqs.partners].conj()))[freqs.order]
    torch.testing.assert_close(rebuilt, full, rtol=0, atol=1e-12)
    assert len(freqs.index) == len(set(zip(freqs.u.tolist(), freqs.v.tolist())))


def _soc_reference(layer: SOCConv2d, x: torch.Tensor) -> torch.Tensor:
    r"""The series as written: :math:`\sum_{i < T} \mathcal{C}_{\tilde L}^i x / i!`, one zero-padded
    convolution per term (channels padded, then cut), plus the bias."""
    kernel = layer.weight
    z = F.pad(x, (0, 0, 0, 0, 0, layer.channels - layer.in_channels))
    term, total = z, z
    for i in range(1, layer.terms):
        term = F.conv2d(term, kernel, padding=layer.kernel_size // 2) / i
        total = total + term
    return total[:, : layer.out_channels] + layer.bias[:, None, None]


@pytest.mark.parametrize(
    "cin,cout,grid,batch",
    [
        (3, 3, (2, 2), 16),  # 12 <= 16: the series on the operator matrix, applied once
        (2, 4, (1, 1), 5),  # 1 x 1 grid: the centre tap's series
        (4, 2, (3, 3), 40),  # 9 taps = 9 pixels: still a small grid
        (3, 3, (2, 2), 4),  # 12 > 4: per term, one operator matrix for every term
        (4, 2, (2, 3), 8),  # per term, channels cut
    ],
)
def test_soc_on_small_grids_equals_the_convolution_series(cin, cout, grid, batch) -> None:
    layer = _perturbed(SOCConv2d(cin, cout, 3, train_terms=5, eval_terms=9, **F64))
    x = torch.randn(batch, cin, *grid, **F64)
    for mode in ("train", "eval"):
        layer.train(mode == "train")
        ref, ref_grads = _values_and_grads(layer, lambda z: _soc_reference(layer, z), x)
        fast, fast_grads = _values_and_grads(layer, layer, x)
        torch.testing.assert_close(fast, ref, **TOL, msg=mode)
        for name in ref_grads:
            if ref_grads[name] is not None or fast_grads[name] is not None:
                torch.testing.assert_close(fast_grads[name], ref_grads[name], **TOL, msg=f"{mode}: {name}")
        # the certificate bounds the Jacobian of the map computed on the small grid
        d = cin * grid[0] * grid[1]
        jac = torch.autograd.functional.jacobian(
            lambda z: layer(z.view(-1, cin, *grid).expand(batch, -1, -1, -1))[0].reshape(-1), torch.zeros(d, **F64)
        )
        assert layer.lipschitz_bound((cin, *grid)) >= float(torch.linalg.svdvals(jac).max()) - 1e-12


@pytest.mark.parametrize(("k", "shape"), [(3, (6, 5)), (5, (7, 7)), (3, (2, 3))])
def test_circular_convolution_with_its_adjoint_as_input_gradient(k: int, shape: tuple[int, int]) -> None:
    """BCOP's and AOC's circular convolution (the input gradient a circular convolution with the
    adjoint kernel, not the padded copy's gradient folded back) against ``conv2d(pad(x))``: the same
    values, first gradients (input, kernel, bias) and gradients of gradients, in float64."""
    from critics.layers.conv_base import _circular_conv_odd

    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 3, *shape, generator=g, **F64).requires_grad_()
    kernel = torch.randn(4, 3, k, k, generator=g, **F64).requires_grad_()
    bias = torch.randn(4, generator=g, **F64).requires_grad_()
    p = k // 2
    fast = _circular_conv_odd(x, kernel, bias, p)
    plain = F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), kernel, bias)
    torch.testing.assert_close(fast, plain, **TOL)
    out_grad = torch.randn(fast.shape, generator=g, **F64)
    for a, b in zip(
        torch.autograd.grad(fast, (x, kernel, bias), out_grad, create_graph=True),
        torch.autograd.grad(plain, (x, kernel, bias), out_grad, create_graph=True),
    ):
        torch.testing.assert_close(a, b, **TOL)
    assert torch.autograd.gradgradcheck(lambda *t: _circular_conv_odd(*t, p), (x, kernel, bias))
