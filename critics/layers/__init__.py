"""Lipschitz layers: explicit, flat re-exports (one file per family)."""

from critics.layers.activations import get_activation
from critics.layers.aoc import AOCConv2d
from critics.layers.aol import AOLConv2d
from critics.layers.bcop import BCOPConv2d
from critics.layers.bjorck import BjorckLinear
from critics.layers.cayley import CayleyConv2d
from critics.layers.cones import ConeHead, LinearUnitHead, PotentialHead
from critics.layers.conv_base import LipschitzConv2d
from critics.layers.cpl import CPLConv2d
from critics.layers.downsample import InvertibleDownsample, PadToMultiple, strided_conv
from critics.layers.groupsort import GroupSort, MaxMin
from critics.layers.ossn import OSSNConv2d
from critics.layers.residual import Residual
from critics.layers.rko import RKOConv2d
from critics.layers.sll import SLLConv2d
from critics.layers.soc import SOCConv2d

__all__ = [
    "BjorckLinear",
    "GroupSort",
    "MaxMin",
    "get_activation",
    "BCOPConv2d",
    "SOCConv2d",
    "RKOConv2d",
    "OSSNConv2d",
    "AOCConv2d",
    "CayleyConv2d",
    "ConeHead",
    "LinearUnitHead",
    "PotentialHead",
    "AOLConv2d",
    "SLLConv2d",
    "CPLConv2d",
    "Residual",
    "LipschitzConv2d",
    "InvertibleDownsample",
    "PadToMultiple",
    "strided_conv",
]
