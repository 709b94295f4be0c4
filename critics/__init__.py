"""critics: provably Lipschitz layers, critic architectures, certificates and a registry.

Usable on its own in any GAN training loop:

>>> import critics
>>> f = critics.build("bjorck-mlp", input_shape=(2,), width=64, depth=3)
>>> L = critics.certify(f, (2,))      # certified upper bound on Lip(f), L2 -> L2
>>> g = critics.export(f)             # the same function in plain torch.nn modules

Certificate rules (which bound certifies which module type) are one registry,
:mod:`critics.rules`; :func:`register_certificate_rule` adds a user's own (marked user-asserted).
"""

from critics import architectures, empirical, layers  # architectures: imported for registration
from critics._registry import (
    INPUTS,
    LOSSES,
    available,
    build,
    critic_inputs,
    critic_options,
    default_loss,
    listing,
    register_critic,
)
from critics.certificates import CertificateReport, certificate_report, certify
from critics.ortho import OrthoConfig
from critics.rules import (
    CertificateRule,
    CertificationError,
    certificate_rules,
    register_certificate_rule,
    register_parametrization,
)
from critics.vanilla import export

__all__ = [
    "architectures",
    "available",
    "build",
    "CertificateRule",
    "certificate_rules",
    "CertificationError",
    "certify",
    "critic_inputs",
    "certificate_report",
    "CertificateReport",
    "critic_options",
    "default_loss",
    "empirical",
    "export",
    "layers",
    "listing",
    "INPUTS",
    "LOSSES",
    "OrthoConfig",
    "register_certificate_rule",
    "register_critic",
    "register_parametrization",
]
