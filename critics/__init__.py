"""critics: provably Lipschitz layers, critic architectures, certificates and a registry.

Usable on its own in any GAN training loop::

    import critics
    f = critics.build("bjorck-mlp", input_shape=(2,), width=64, depth=3)
    L = critics.certify(f, (2,))      # certified upper bound on Lip(f), L2 -> L2
"""

from critics._registry import available, build, critic_options, register_critic
from critics.certificates import CertificateReport, certificate_report, certify

__all__ = [
    "available",
    "build",
    "certify",
    "certificate_report",
    "CertificateReport",
    "critic_options",
    "register_critic",
]
