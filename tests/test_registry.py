"""The critic registry: discovery, errors that name what is wrong, public API resolution."""

from __future__ import annotations

import pytest
import torch

import critics
import critics.layers


def test_dense_critics_are_registered_on_import() -> None:
    assert {"bjorck-mlp", "gp-mlp", "sn-mlp"} <= set(critics.available())
    assert critics.available() == sorted(critics.available())


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError) as err:
        critics.build("bjork-mlp", (4,))
    msg = str(err.value)
    assert "bjork-mlp" in msg
    for name in critics.available():
        assert name in msg
    assert "Did you mean 'bjorck-mlp'" in msg


def test_unknown_option_is_named() -> None:
    with pytest.raises(ValueError, match="'widht'") as err:
        critics.build("bjorck-mlp", (4,), widht=8)
    assert "width" in str(err.value)  # lists the accepted options


@pytest.mark.parametrize("shape", [(), (0,), (4, -1)])
def test_bad_input_shape_raises(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        critics.build("bjorck-mlp", shape)


def test_bad_architecture_options_raise() -> None:
    with pytest.raises(ValueError, match="width 10"):
        critics.build("bjorck-mlp", (4,), width=10, activation="groupsort4")
    with pytest.raises(ValueError, match="maxmin"):
        critics.build("gp-mlp", (4,), activation="maxmin")
    with pytest.raises(ValueError, match="swish"):
        critics.build("sn-mlp", (4,), activation="swish")
    with pytest.raises(ValueError, match="width"):
        critics.build("gp-mlp", (4,), width=0)


def test_options_and_none_defaults() -> None:
    opts = critics.critic_options("bjorck-mlp")
    assert opts == {"width": 256, "depth": 3, "activation": "maxmin", "bjorck_iters": None}
    model = critics.build("bjorck-mlp", (4,), width=8, depth=1, bjorck_iters=None)
    assert model[1].bjorck_iters == 30


def test_public_api_resolves() -> None:
    for mod in (critics, critics.layers):
        for name in mod.__all__:
            assert hasattr(mod, name), f"{mod.__name__}.__all__ lists {name!r}, which is not defined"


def test_a_built_critic_refuses_inputs_of_another_shape_naming_both() -> None:
    critic = critics.build("bcop-dcgan", (3, 32, 32), width=0.125)
    with pytest.raises(ValueError, match=r"built for inputs of shape \(N, 3, 32, 32\).*\(2, 1, 32, 32\)"):
        critic(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        critics.certify(critic, (3, 16, 16))


@pytest.mark.parametrize("shape", [(2.5,), ("3",), (), (3, 0, 8)])
def test_input_shape_must_be_positive_integers(shape) -> None:
    with pytest.raises(ValueError, match="input_shape must be a non-empty tuple of positive integers"):
        critics.build("bjorck-mlp", shape)


@pytest.mark.parametrize(
    "name,options,needle",
    [
        ("bjorck-mlp", {"width": 64.7}, "width must be a positive integer; got 64.7"),
        ("bjorck-mlp", {"depth": 2.9}, "depth must be an integer >= 0; got 2.9"),
        ("gp-mlp", {"width": "64"}, "width must be a positive integer; got '64'"),
        ("soc-lipconvnet", {"depth": True}, "depth must be an integer >= 0; got True"),
        ("bcop-dcgan", {"bjorck_iters": 0}, "bjorck_iters must be a positive integer; got 0"),
    ],
)
def test_integer_options_are_checked_not_truncated(name: str, options: dict, needle: str) -> None:
    shape = (4,) if name.endswith("mlp") else (3, 16, 16)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        critics.build(name, shape, **options)


def test_groupsort_size_and_padding_multiple_are_integers() -> None:
    from critics.layers import GroupSort
    from critics.layers.downsample import PadToMultiple

    with pytest.raises(ValueError, match="group_size must be a positive integer; got 2.7"):
        GroupSort(2.7)
    with pytest.raises(ValueError, match="multiple must be a positive integer; got 2.9"):
        PadToMultiple(2.9)
