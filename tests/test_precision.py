"""Mixed precision, the part that runs on a CPU.

``--trainer.precision bf16-mixed`` trains under autocast (bfloat16 matmuls), while the held-out
evaluation runs without autocast on the float32 weights, and the certificate is computed (float64)
on those same weights: the reported estimate is reproduced by a float32 forward of the final
critic, and its certificate by certifying that critic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import critics
from wdist.pipeline import estimate
from wdist.stats import mean_difference_interval

TOY = Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml"


class _Watch(pl.Callback):
    """Records the dtype of the critic's output in training and in held-out evaluation.

    Through a forward hook, taken off before each evaluation's certificate (callbacks' hooks run
    before the system's, which certifies the critic; a hooked critic is refused) and put back after.
    """

    def __init__(self) -> None:
        self.dtypes: dict[str, set] = {"train": set(), "eval": set()}
        self.system = None
        self.dm = None
        self.handle = None

    def _hook(self, module, inputs, output) -> None:
        self.dtypes["train" if module.training else "eval"].add(output.dtype)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.system, self.dm = pl_module, trainer.datamodule
        self.handle = pl_module.critic.register_forward_hook(self._hook)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self.handle = pl_module.critic.register_forward_hook(self._hook)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.on_validation_epoch_end(trainer, pl_module)


def test_bf16_mixed_trains_in_bf16_and_certifies_float32_weights() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        watch = _Watch()
        res = estimate(
            str(TOY),
            ["--trainer.precision", "bf16-mixed", "--trainer.accelerator", "cpu", "--train.steps", "30",
             "--train.eval_every", "15", "--train.batch_size", "64", "--eval.n_eval", "1024",
             "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "64"],
            callbacks=[watch], quiet=True,
        )  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert watch.dtypes["train"] == {torch.bfloat16}  # training ran under autocast
    assert watch.dtypes["eval"] == {torch.float32}  # held-out evaluation did not
    critic = watch.system.critic.eval()
    assert all(p.dtype == torch.float32 for p in critic.parameters())
    # the certificate is that of the float32 weights the estimate was computed with
    cert = critics.certify(critic, (2,))
    assert isinstance(cert, float) and cert == pytest.approx(res.lipschitz_certificate, rel=1e-12)
    assert res.certified and res.lipschitz_certificate <= 1 + 1e-3
    heldout = watch.dm.test
    with torch.no_grad():
        fp, fq = critic(heldout.p).reshape(-1).double(), critic(heldout.q).reshape(-1).double()
    iv = mean_difference_interval(fp, fq, confidence=0.95, method="normal")
    assert iv.estimate == pytest.approx(res.estimate, abs=1e-6, rel=0)
    assert iv.estimate / cert == pytest.approx(res.lower_bound, abs=1e-6, rel=0)
    assert res.empirical_lipschitz is not None and res.empirical_lipschitz <= cert * (1 + 1e-6)


def _tf32_settings() -> tuple:
    if hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        return (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


@pytest.mark.skipif(not hasattr(torch.backends.cuda.matmul, "fp32_precision"), reason="torch < 2.9 settings API")
def test_heldout_evaluation_switches_tf32_off_and_restores_the_users_setting() -> None:
    """cuDNN's default TF32 convolutions err by ~1e-3 per layer (seen on an H100: a BCOP layer's
    computed Jacobian had singular values 0.9997-1.0003); evaluation must run in IEEE float32
    and leave the user's training setting as it was, also when evaluation raises."""
    from wdist.precision import ieee_float32

    before = _tf32_settings()
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    try:
        with ieee_float32():
            assert _tf32_settings() == ("ieee", "ieee")
        assert _tf32_settings() == ("tf32", "tf32")
        with pytest.raises(RuntimeError, match="boom"):
            with ieee_float32():
                raise RuntimeError("boom")
        assert _tf32_settings() == ("tf32", "tf32")
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.skipif(not hasattr(torch.backends.cuda.matmul, "fp32_precision"), reason="torch < 2.9 settings API")
def test_cuda_heldout_values_match_float64_with_tf32_enabled_for_training() -> None:
    """With TF32 switched on (as a user might for training speed), the values computed inside
    ``ieee_float32`` still match a float64 evaluation of the same critic to float32 accuracy."""
    from wdist.precision import ieee_float32

    critic = critics.build("bcop-dcgan", (3, 16, 16), width=0.25).cuda().eval()
    x = torch.rand(64, 3, 16, 16, device="cuda") * 2 - 1
    ref = critics.build("bcop-dcgan", (3, 16, 16), width=0.25).double().cuda().eval()
    ref.load_state_dict(critic.state_dict())
    before = _tf32_settings()
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    try:
        with torch.no_grad(), ieee_float32():
            got = critic(x).double()
        with torch.no_grad():
            want = ref(x.double())
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before
    assert float((got - want).abs().max() / want.abs().max()) < 1e-5
