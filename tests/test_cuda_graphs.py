"""CUDA-graph replay of the kernel construction (BCOP, SOC, AOC, AOL, SLL, CPL): same kernel, same gradients.

On a GPU the construction of a BCOP or SOC kernel is hundreds of tiny kernels; training steps
replay a captured CUDA graph of it instead (``LipschitzConv2d.cuda_graphs``). The graphed build
must compute what the eager build computes, see every optimiser step, and be recaptured when a
parameter moves. The synchronisation-free builds are checked on the CPU too.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from critics.layers import AOCConv2d, AOLConv2d, BCOPConv2d, CPLConv2d, SLLConv2d, SOCConv2d

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

LAYERS = [
    pytest.param(lambda: BCOPConv2d(8, 8, 3), id="bcop-8-8-k3"),
    pytest.param(lambda: BCOPConv2d(6, 10, 2), id="bcop-6-10-k2"),
    pytest.param(lambda: BCOPConv2d(10, 6, 1), id="bcop-10-6-k1"),
    pytest.param(lambda: SOCConv2d(8, 8, 3), id="soc-8-8-k3"),
    pytest.param(lambda: SOCConv2d(6, 10, 3), id="soc-6-10-k3"),
    pytest.param(lambda: AOCConv2d(6, 8, 3), id="aoc-6-8-k3"),
    pytest.param(lambda: AOCConv2d(4, 8, 4, stride=2), id="aoc-4-8-k4-s2"),
    pytest.param(lambda: AOLConv2d(6, 8, 3), id="aol-6-8-k3"),
    pytest.param(lambda: SLLConv2d(8, 6, 3), id="sll-8-h6-k3"),
    pytest.param(lambda: CPLConv2d(8, 8, 3), id="cpl-8-8-k3"),
]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("make", LAYERS)
def test_synchronisation_free_build_equals_the_eager_build(make) -> None:
    """``fn(*params)`` from ``_graph_build`` is the training kernel (BCOP: all Björck
    iterations instead of stopping at the tolerance, so equal up to that tolerance)."""
    layer = make()
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(3):  # away from the initialisation
        opt.zero_grad()
        layer(torch.randn(4, layer.in_channels, 6, 6)).pow(3).mean().backward()
        opt.step()
    fn, params, _ = layer._graph_build()
    assert _rel(fn(*params), layer._build_kernel()) < 1e-5


@pytest.mark.gpu
@CUDA
@pytest.mark.parametrize("make", LAYERS)
def test_graphed_training_steps_match_eager_steps(make) -> None:
    graphed = make().cuda()
    eager = copy.deepcopy(graphed)
    eager.cuda_graphs = False
    opts = [torch.optim.Adam(m.parameters(), lr=0.02) for m in (graphed, eager)]
    for _ in range(4):
        x = torch.randn(16, graphed.in_channels, 8, 8, device="cuda")
        outs = []
        for m, opt in zip((graphed, eager), opts):
            opt.zero_grad()
            y = m(x)
            y.pow(3).mean().backward()
            outs.append((y.detach(), [p.grad.clone() for p in m.parameters()]))
        (yg, gg), (ye, ge) = outs
        assert _rel(yg, ye) < 1e-5
        for a, b in zip(gg, ge):
            assert _rel(a, b) < 1e-3
        for opt in opts:
            opt.step()
    assert graphed._graph is not None and eager._graph is None


@pytest.mark.gpu
@CUDA
def test_graph_sees_loaded_weights_and_is_recaptured_when_parameters_move() -> None:
    layer = BCOPConv2d(8, 8, 3).cuda()
    x = torch.randn(4, 8, 8, 8, device="cuda")
    layer(x).sum().backward()
    first = layer._graph
    other = BCOPConv2d(8, 8, 3)
    layer.load_state_dict(other.state_dict())  # in place: same memory, the graph is reused
    y = layer(x)
    y.sum().backward()
    assert layer._graph is first
    assert _rel(y.detach().cpu(), other(x.cpu()).detach()) < 1e-5
    layer.double()  # new memory and dtype: recaptured
    layer(x.double()).sum().backward()
    assert layer._graph is not first and layer._graph is not None


@pytest.mark.gpu
@CUDA
def test_layers_holding_a_graph_copy_and_pickle() -> None:
    layer = SOCConv2d(8, 8, 3).cuda()
    layer(torch.randn(2, 8, 8, 8, device="cuda")).sum().backward()
    assert layer._graph is not None
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert clone._graph is None
        x = torch.randn(2, 8, 8, 8, device="cuda")
        assert _rel(clone(x), layer(x)) < 1e-6


@pytest.mark.gpu
@CUDA
def test_gradients_accumulate_over_two_backwards_like_eager() -> None:
    """Two forward/backward pairs without zeroing: the accumulated .grad must be the sum (the
    graph's static gradient buffers are copied out, never aliased by .grad)."""
    graphed = BCOPConv2d(8, 8, 3).cuda()
    eager = copy.deepcopy(graphed)
    eager.cuda_graphs = False
    xs = torch.randn(2, 4, 8, 8, 8, device="cuda")
    for m in (graphed, eager):
        for x in xs:
            m(x).pow(3).mean().backward()
    for a, b in zip(graphed.parameters(), eager.parameters()):
        assert _rel(a.grad, b.grad) < 1e-3


@pytest.mark.gpu
@CUDA
def test_backward_after_a_later_rebuild_raises_instead_of_returning_wrong_gradients() -> None:
    layer = SOCConv2d(8, 8, 3).cuda()
    first = layer.weight
    layer.clear_cache()
    _ = layer.weight  # a second replay overwrites the first one's intermediates
    with pytest.raises(RuntimeError, match="overwritten"):
        first.sum().backward()
    again = layer.weight  # (cached: same build) a second backward through one replay
    again.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="a second time"):
        again.sum().backward()


@pytest.mark.gpu
@CUDA
def test_frozen_layer_builds_eagerly() -> None:
    layer = BCOPConv2d(8, 8, 3).cuda().requires_grad_(False)
    x = torch.randn(2, 8, 8, 8, device="cuda", requires_grad=True)
    layer(x).sum().backward()
    assert layer._graph is None and x.grad is not None
