"""The architecture step of DARTS (first and second order) with the latency term added to the α loss.

Second order follows DARTS' `architect.py`: one virtual SGD step w' = w − ξ(momentum + ∇w L_train(w) + wd·w),
the validation gradient at w', and the implicit term −ξ ∇²_{α,w} L_train · ∇w' L_val by central finite
differences with ε = 0.01 / ‖∇w' L_val‖. The latency term depends on α only, so its gradient is added as is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lpm_zoo.search.latency import check_finite
from lpm_zoo.search.model_search import SearchNetwork
from lpm_zoo.search.precision import Precision

LatencyFn = Callable[[], torch.Tensor]


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


class Architect:
    """Updates α (and β) with Adam on L_val + λ·LAT, first order or unrolled (second order)."""

    def __init__(self, model: SearchNetwork, lr: float, betas: tuple[float, float], weight_decay: float,
                 w_momentum: float, w_weight_decay: float, unrolled: bool = False, precision: Precision | None = None):
        self.model = model
        self.unrolled = unrolled
        self.precision = precision if precision is not None and precision.reduced else None  # None: fp32
        self.skipped_last = False  # whether the last α step was skipped (fp16: a scaled gradient overflowed)
        self.w_momentum = w_momentum
        self.w_weight_decay = w_weight_decay
        self.optimizer = torch.optim.Adam(model.arch_parameters(), lr=lr, betas=betas, weight_decay=weight_decay)

    def step(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
             eta: float, w_optimizer: torch.optim.Optimizer, latency: LatencyFn | None = None) -> torch.Tensor:
        """One α update; returns the validation loss (detached)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped_last = False
        if self.unrolled:
            val_loss = self._backward_unrolled(x_train, y_train, x_val, y_val, eta, w_optimizer)
        elif self.precision is not None:  # opt-in autocast, first order only (lpm_zoo.search.precision)
            with self.precision.autocast():
                val_loss = self.model.loss(x_val, y_val)
            grads = self.precision.grads(val_loss, self.model.arch_parameters())
            if grads is None:  # fp16 overflow: no α step this time, as the scaler skips a weight step
                self.skipped_last = True
                return val_loss.detach().float()
            self._set_grads(grads)
        else:
            val_loss = self.model.loss(x_val, y_val)
            grads = torch.autograd.grad(val_loss, self.model.arch_parameters(), allow_unused=True)
            self._set_grads(grads)
        if latency is not None:
            lat_loss = latency()
            params = self.model.arch_parameters()
            grads = torch.autograd.grad(lat_loss, params, allow_unused=True)
            for p, g in zip(params, grads):
                if g is not None:
                    p.grad = g.clone() if p.grad is None else p.grad + g
        self.optimizer.step()
        check_finite(*self.model.arch_parameters())  # a diverged step stops the search in one line
        return val_loss.detach()

    def _set_grads(self, grads) -> None:
        for p, g in zip(self.model.arch_parameters(), grads):
            p.grad = torch.zeros_like(p) if g is None else g.detach().clone()

    def _backward_unrolled(self, x_train, y_train, x_val, y_val, eta: float,
                           w_optimizer: torch.optim.Optimizer) -> torch.Tensor:
        model = self.model
        weights = model.weight_parameters()
        loss = model.loss(x_train, y_train)
        theta = _flat(weights).detach()
        try:
            moment = _flat(w_optimizer.state[v]["momentum_buffer"] for v in weights).mul(self.w_momentum)
        except (KeyError, TypeError):
            moment = torch.zeros_like(theta)
        grads_w = torch.autograd.grad(loss, weights, allow_unused=True)
        dtheta = _flat(g if g is not None else torch.zeros_like(w) for g, w in zip(grads_w, weights)).detach()
        dtheta = dtheta + self.w_weight_decay * theta
        unrolled = self._model_from_theta(theta - eta * (moment + dtheta))
        val_loss = unrolled.loss(x_val, y_val)
        u_arch, u_weights = unrolled.arch_parameters(), unrolled.weight_parameters()
        grads = torch.autograd.grad(val_loss, u_arch + u_weights, allow_unused=True)
        dalpha = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads[:len(u_arch)], u_arch)]
        vector = [g.detach() if g is not None else torch.zeros_like(p) for g, p in zip(grads[len(u_arch):], u_weights)]
        implicit = self._hessian_vector_product(vector, x_train, y_train)
        self._set_grads([d - eta * ig for d, ig in zip(dalpha, implicit)])
        return val_loss

    def _model_from_theta(self, theta: torch.Tensor) -> SearchNetwork:
        """A copy of the model with weights θ and the current α (buffers copied too).

        The copy is built once, on θ's device, and refilled in place every step (DARTS rebuilds it
        each step, a full network construction plus host/device copies on the hot path)."""
        new = getattr(self, "_unrolled", None)
        if new is None or next(new.parameters()).device != theta.device:
            new = self._unrolled = self.model.new().to(theta.device)
        state = self.model.state_dict()
        offset = 0
        for name, p in self.model.named_weight_parameters():
            n = p.numel()
            state[name] = theta[offset:offset + n].view_as(p)
            offset += n
        new.load_state_dict(state)
        return new

    def _hessian_vector_product(self, vector, x, y, r: float = 1e-2):
        weights = self.model.weight_parameters()
        R = r / _flat(vector).norm().clamp_min(1e-12)
        with torch.no_grad():
            for p, v in zip(weights, vector):
                p.add_(v, alpha=R)
        grads_p = torch.autograd.grad(self.model.loss(x, y), self.model.arch_parameters(), allow_unused=True)
        with torch.no_grad():
            for p, v in zip(weights, vector):
                p.sub_(v, alpha=2 * R)
        grads_n = torch.autograd.grad(self.model.loss(x, y), self.model.arch_parameters(), allow_unused=True)
        with torch.no_grad():
            for p, v in zip(weights, vector):
                p.add_(v, alpha=R)
        out = []
        for gp, gn, a in zip(grads_p, grads_n, self.model.arch_parameters()):
            gp = torch.zeros_like(a) if gp is None else gp
            gn = torch.zeros_like(a) if gn is None else gn
            out.append((gp - gn) / (2 * R))
        return out
