"""The PyTorch reference engine: eager autograd, ``torch.optim.SGD``, ``clip_grad_norm_``.

Unlike the notes' loop it keeps the data on the device, slices batches itself and never
syncs with the host inside a chunk of steps: per-step losses stay on the device until the
chunk ends.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from fnn_tui.core.data import Dataset
from fnn_tui.core.dead import spread
from fnn_tui.core.model import build_model
from fnn_tui.core.presets import Preset
from fnn_tui.core.state import TrainState


class TorchEngine:
    """Eager PyTorch training on any device."""

    name = "torch"

    def __init__(
        self,
        preset: Preset,
        data: Dataset,
        device: str,
        resume: TrainState | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        t = preset.training
        self.device = torch.device(device)
        self.batch = t.batch_size
        self.l2 = t.l2
        self.clip = t.clip
        model = build_model(preset.model, preset.data.seed)
        if resume is not None:
            model.load_state_dict(resume.params)
        self.model = model.to(self.device, dtype)
        named = list(self.model.named_parameters())
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.opt = torch.optim.SGD(self.params, lr=t.lr, momentum=t.momentum)
        if resume is not None and resume.momentum:
            for name, p in named:
                self.opt.state[p]["momentum_buffer"] = resume.momentum[name].to(self.device, dtype).clone()
        self.x_train = data.x_train.to(self.device, dtype)
        self.y_train = data.y_train.to(self.device, dtype)
        self.x_test = data.x_test.to(self.device, dtype)
        self.y_test = data.y_test.to(self.device, dtype)
        self.n_train = data.n_train
        self.steps_per_epoch = math.ceil(data.n_train / self.batch)
        self.losses = torch.zeros(self.steps_per_epoch, device=self.device, dtype=dtype)
        self.ratios = torch.zeros(self.steps_per_epoch, device=self.device, dtype=dtype)
        self.xs = self.x_train
        self.ys = self.y_train

    def set_epoch(self, epoch: int, order: torch.Tensor, lr: float) -> None:
        """Gather the epoch's samples in order once, on the device."""
        for group in self.opt.param_groups:
            group["lr"] = lr
        order = order.to(self.device)
        self.xs = self.x_train[order]
        self.ys = self.y_train[order]
        self.losses.zero_()
        self.ratios.zero_()

    def run_steps(self, start: int, stop: int) -> int:
        """Forward, loss, backward, L2, clip and SGD step for each step in the range."""
        model, params, opt, b = self.model, self.params, self.opt, self.batch
        for s in range(start, stop):
            # forward
            xb = self.xs[s * b : (s + 1) * b]
            yb = self.ys[s * b : (s + 1) * b]
            out = model(xb)
            # loss: MSE; the L2 term's gradient 2*l2*p is added below, which is the same
            # gradient as differentiating MSE + l2 * sum(p**2) at a fraction of the cost
            mse = F.mse_loss(out, yb)
            # backward
            opt.zero_grad(set_to_none=True)
            mse.backward()
            if self.l2:
                torch._foreach_add_([p.grad for p in params], params, alpha=2.0 * self.l2)
            # clip
            if self.clip is not None:
                torch.nn.utils.clip_grad_norm_(params, self.clip)
            # step
            opt.step()
            # log, without a host sync
            self.losses[s] = mse.detach()
            self.ratios[s] = (out.detach() / yb).abs().mean()
        bad = ~torch.isfinite(self.losses[start:stop])
        if bool(bad.any()):
            return start + int(bad.nonzero()[0, 0])
        return -1

    def train_metrics(self) -> tuple[float, float]:
        """Epoch means of the per-step MSE and ratio."""
        loss, ratio = torch.stack([self.losses.mean(), self.ratios.mean()]).tolist()
        return loss, ratio

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, float, float]:
        """Test MSE, ratio, MAE and the std of y_hat on the whole test set at once."""
        out = self.model(self.x_test)
        err = out - self.y_test
        values = torch.stack([(err * err).mean(), (out / self.y_test).abs().mean(), err.abs().mean()])
        # one transfer for all: the three means and the predictions, whose std is taken on
        # the host in float64 (core.dead.spread), as the fused engine does; MPS has no float64
        host = torch.cat([values, out.reshape(-1)]).cpu()
        loss, ratio, mae = host[:3].tolist()
        return loss, ratio, mae, spread(host[3:])

    @torch.no_grad()
    def predict(self, xs: np.ndarray) -> np.ndarray:
        """y_hat at ``xs`` with the current weights: one batched forward on the device."""
        x = torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32).reshape(-1, 1))
        out = self.model(x.to(self.device, self.x_train.dtype))
        return out.reshape(-1).to("cpu", torch.float32).numpy()

    def snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """CPU copies of the weights and momentum buffers."""
        params = {n: p.detach().to("cpu", torch.float32, copy=True) for n, p in zip(self.names, self.params)}
        momentum: dict[str, torch.Tensor] = {}
        for n, p in zip(self.names, self.params):
            buf = self.opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                momentum[n] = buf.detach().to("cpu", torch.float32, copy=True)
        return params, momentum

    def step_log(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """CPU copies of the per-step MSE and ratio of this epoch's first ``steps`` steps."""
        return self.losses[:steps].detach().cpu().clone(), self.ratios[:steps].detach().cpu().clone()

    def restore_step_log(self, losses: torch.Tensor, ratios: torch.Tensor) -> None:
        """Put back the per-step log of the steps already done in this epoch."""
        n = losses.numel()
        self.losses[:n] = losses.to(self.device, self.losses.dtype)
        self.ratios[:n] = ratios.to(self.device, self.ratios.dtype)
