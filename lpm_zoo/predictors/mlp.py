"""The paper's latency prediction module (LPM, §3.2): an MLP on the 112-bit encoding.

`mlp` is the paper's model exactly: 112 -> 256 -> 64 -> 1, a sigmoid after every layer but the
last, MSE loss, SGD with momentum 0.9, learning rate 0.01, weight decay 1e-5, batch 200, 1000
epochs. Target scaling (ours; the paper does not say): the network predicts the standardised
latency (y - mean) / std of the training set, so the same learning rate works for any device.
Training is deterministic given `seed`. Prediction gathers the 8 rows of the first layer that
an 8-hot encoding selects (an embedding bag) instead of a dense matmul, in chunks.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from lpm_zoo.encoding import bit_indices
from lpm_zoo.predictors.base import Predictor
from lpm_zoo.predictors.registry import register_predictor

if TYPE_CHECKING:
    import torch
    from torch import nn

_CHUNK = 4096  # cells per prediction chunk: keeps the (chunk, 256) activations in cache
LOSSES = ("mse", "huber")
MAX_MEMBERS = 16  # networks in an ensemble (`members`)
_MAX_STACKED = 1 << 26  # weights the stacked ensemble may hold (256 MB of float32): checked before building it


def stack_members(nets: list[list[tuple[np.ndarray, np.ndarray]]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One network whose output is the mean of the members' outputs: first layers side by side,
    hidden layers block-diagonal, last layers stacked and divided by their number. Prediction,
    `predict_torch` and fine-tuning then treat an ensemble as the plain MLP it is."""
    k = len(nets)
    if k == 1:
        return nets[0]
    out = []
    for i in range(len(nets[0])):
        Ws, bs = [n[i][0] for n in nets], [n[i][1] for n in nets]
        if i == len(nets[0]) - 1:
            W, b = np.vstack(Ws) / k, np.mean(bs, axis=0)
        elif i == 0:
            W, b = np.hstack(Ws), np.concatenate(bs)
        else:
            from scipy.linalg import block_diag

            W, b = block_diag(*Ws), np.concatenate(bs)
        out.append((np.ascontiguousarray(W, np.float32), np.ascontiguousarray(b, np.float32)))
    return out


def check_chain(shapes: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
    """Refuse (ValueError) layer shapes that do not chain: weight (in, out), bias (out,), one output at the end."""
    if not shapes or shapes[-1][0][1:] != (1,):
        raise ValueError("a network must end in one output")
    for (w, b), (w2, _) in zip(shapes, shapes[1:] + [((1, 1), (1,))]):
        if len(w) != 2 or b != (w[1],) or (w2 != (1, 1) and w2[0] != w[1]):
            raise ValueError("a network's layers do not chain (weight (in, out), bias (out,))")


def members_from_state(state: dict[str, np.ndarray]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The members of a saved ensemble (`member{j}.layer{k}.weight/bias`), shapes checked before anything is built."""
    names = {k.split(".", 1)[0] for k in state if k.startswith("member")}
    count = len(names)
    if any(not k.startswith("member") and k != "target.mean_std" for k in state):
        raise ValueError("an ensemble's file holds its members and target.mean_std, nothing else")
    if not 2 <= count <= MAX_MEMBERS or names != {f"member{j}" for j in range(count)}:
        raise ValueError(f"an ensemble holds 2 to {MAX_MEMBERS} members named member0, member1, ...")
    nets = []
    for j in range(count):
        depth = sum(1 for k in state if k.startswith(f"member{j}.layer") and k.endswith(".weight"))
        net = [(np.asarray(state[f"member{j}.layer{i}.weight"], np.float32),
                np.asarray(state[f"member{j}.layer{i}.bias"], np.float32)) for i in range(depth)]
        nets.append(net)
    shapes = [[(W.shape, b.shape) for W, b in net] for net in nets]
    first = shapes[0]
    if any(sh != first for sh in shapes):
        raise ValueError("the members of an ensemble must be networks of one shape")
    check_chain(first)
    hidden = [w[1] for w, _ in first[:-1]]
    stacked = first[0][0][0] * count * first[0][0][1] + sum(count * a * count * b for a, b in zip(hidden, hidden[1:]))
    if stacked > _MAX_STACKED:
        raise ValueError(f"the stacked ensemble would hold {stacked} weights, over {_MAX_STACKED}")
    return nets


@register_predictor("mlp")
class MLPPredictor(Predictor):
    """The paper's LPM: 112-256-64-1 sigmoid MLP trained with momentum SGD on MSE."""

    differentiable = True
    activation = "sigmoid"  # or "relu", for subclasses
    state_spec = {"layer*.weight": ("float32", (None, None)), "layer*.bias": ("float32", (None,)),
                  "target.mean_std": ("float64", (2,))}

    def __init__(
        self,
        hidden: tuple[int, ...] = (256, 64),
        epochs: int = 1000,
        batch_size: int = 200,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-5,
        seed: int = 0,
        progress: bool = False,
    ):
        super().__init__()
        self.hidden = tuple(int(h) for h in hidden)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.seed = int(seed)
        self.progress = bool(progress)
        if self.epochs < 0 or self.batch_size < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"need epochs >= 0, batch_size >= 1 and hidden sizes >= 1 (got {self.epochs}, "
                             f"{self.batch_size}, {list(self.hidden)})")
        self._weights: list[tuple[np.ndarray, np.ndarray]] | None = None  # (W (in, out), b (out,)) per layer
        self._y_mean = 0.0
        self._y_std = 1.0

    # --- the network ----------------------------------------------------------------------
    def build_module(self) -> nn.Sequential:
        """The torch network (Linear, activation, ..., Linear), untrained; initialised from torch's RNG."""
        from torch import nn

        act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[self.activation]
        layers: list[nn.Module] = []
        width = getattr(self, "_n_in", 112)  # 112 bits, or 224 for both cells: set by the data in `_fit`
        for h in self.hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers)

    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """The optimiser of the paper (momentum SGD with weight decay)."""
        import torch

        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        import torch

        self._y_mean = float(y.mean())  # the network predicts the standardised latency
        self._y_std = float(y.std()) or 1.0
        X = torch.from_numpy(self._dense(ops, inputs))
        self._n_in = X.shape[1]
        T = torch.from_numpy(((y - self._y_mean) / self._y_std).astype(np.float32))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and leaves the other cores free
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = self.build_module()
                gen = torch.Generator().manual_seed(self.seed)
                if self._fast_path():
                    self._train_fast(net, X, T, gen)
                else:
                    self._train_autograd(net, X, T, gen)
        finally:
            torch.set_num_threads(threads)
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        self._weights = [
            (m.weight.detach().T.contiguous().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears
        ]

    def _fast_path(self) -> bool:
        return (type(self).make_optimizer is MLPPredictor.make_optimizer and self.activation == "sigmoid"
                and type(self).make_scheduler is MLPPredictor.make_scheduler)

    def _epochs(self, n: int, gen: torch.Generator):
        """Yields (epoch, batch index tensor) in the seeded shuffled order, with a progress bar."""
        import torch
        from tqdm.auto import tqdm

        bar = tqdm(range(self.epochs), desc=f"fit {self.type_name}", unit="epoch", disable=not self.progress,
                   leave=False)
        for ep in bar:
            perm = torch.randperm(n, generator=gen)
            for s in range(0, n, self.batch_size):
                yield ep, perm[s : s + self.batch_size]

    def _train_autograd(self, net: nn.Sequential, X: torch.Tensor, T: torch.Tensor,
                        gen: torch.Generator) -> None:
        """Plain torch training: any activation, optimiser or schedule."""
        opt = self.make_optimizer(net.parameters())
        sched = self.make_scheduler(opt, len(T))
        loss_fn = self.loss_function()
        for _, idx in self._epochs(len(T), gen):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(X[idx]).squeeze(1), T[idx])
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()

    def _train_fast(self, net: nn.Sequential, X: torch.Tensor, T: torch.Tensor, gen: torch.Generator) -> None:
        """The same computation as `_train_autograd` with SGD, gradients written out by hand (2x faster).

        Per batch: MSE on a sigmoid MLP, then torch.optim.SGD's update: g += wd * p,
        buf = momentum * buf + g, p -= lr * buf.
        """
        import torch

        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        Ws = [m.weight.detach().T.contiguous() for m in linears]  # (in, out)
        bs = [m.bias.detach().clone() for m in linears]
        params = [p for pair in zip(Ws, bs) for p in pair]
        bufs = [torch.zeros_like(p) for p in params]
        T = T.unsqueeze(1)
        with torch.no_grad():
            for _, idx in self._epochs(len(T), gen):
                acts = [X[idx]]
                for W, b in zip(Ws[:-1], bs[:-1]):
                    acts.append(torch.addmm(b, acts[-1], W).sigmoid_())
                d = torch.addmm(bs[-1], acts[-1], Ws[-1]).sub_(T[idx]).mul_(2.0 / len(idx))  # dLoss/dout
                grads: list[torch.Tensor] = []
                for k in range(len(Ws) - 1, -1, -1):
                    grads += [d.sum(0), acts[k].t() @ d]  # bias, weight (reversed order)
                    if k:
                        a = acts[k]
                        d = (d @ Ws[k].t()).mul_(a).mul_(1.0 - a)
                grads.reverse()  # weight, bias per layer, as `params`
                if self.weight_decay:
                    torch._foreach_add_(grads, params, alpha=self.weight_decay)
                torch._foreach_mul_(bufs, self.momentum)
                torch._foreach_add_(bufs, grads)
                torch._foreach_add_(params, bufs, alpha=-self.lr)
        for m, W, b in zip(linears, Ws, bs):
            m.weight.data.copy_(W.T)
            m.bias.data.copy_(b)

    def make_scheduler(self, opt: Any, n: int) -> Any:
        """Learning-rate schedule stepped once per batch; the paper uses none."""
        return None

    def loss_function(self) -> Any:
        """The training loss on standardised latencies: the paper's MSE."""
        import torch

        return torch.nn.functional.mse_loss

    # --- prediction -------------------------------------------------------------------------
    def _tensors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        cache = getattr(self, "_tcache", None)
        if cache is None or cache[0] is not self._weights:
            cache = (self._weights, [(torch.from_numpy(W), torch.from_numpy(b)) for W, b in self._weights])
            self._tcache = cache
        return cache[1]

    def _predict(self, ops: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        import torch

        layers = self._tensors()
        act = torch.sigmoid_ if self.activation == "sigmoid" else torch.relu_
        out = np.empty(len(ops), np.float64)
        threads = torch.get_num_threads()
        if len(ops) > _CHUNK:
            torch.set_num_threads(1)  # per-chunk GEMMs are small: one thread is fast and immune to busy cores
        try:
            self._predict_into(out, ops, inputs, layers, act)
        finally:
            torch.set_num_threads(threads)
        return out * self._y_std + self._y_mean

    @staticmethod
    def _predict_into(out: np.ndarray, ops: np.ndarray, inputs: np.ndarray, layers: list, act: Any) -> None:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            for s in range(0, len(ops), _CHUNK):
                idx = torch.from_numpy(bit_indices(ops[s : s + _CHUNK], inputs[s : s + _CHUNK]))
                W1, b1 = layers[0]
                h = act(F.embedding_bag(idx, W1, mode="sum").add_(b1))
                for W, b in layers[1:-1]:
                    h = act(torch.addmm(b, h, W))
                W, b = layers[-1]
                out[s : s + _CHUNK] = torch.addmm(b, h, W).squeeze(1).numpy()

    def predict_torch(self, enc: torch.Tensor) -> torch.Tensor:
        """Latency (ms) of (M, 112) encodings, relaxed ones included; gradients flow to `enc`."""
        self._check_fitted()
        layers = [(W.to(enc.device, enc.dtype), b.to(enc.device, enc.dtype)) for W, b in self._tensors()]
        return self.forward(enc, layers) * self._y_std + self._y_mean

    def forward(self, h: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The network on (M, bits) inputs with the given (W (in, out), b) layers: standardised latency, (M,)."""
        import torch

        act = torch.sigmoid if self.activation == "sigmoid" else torch.relu
        for k, (W, b) in enumerate(layers):
            h = h @ W + b
            if k < len(layers) - 1:
                h = act(h)
        return h.squeeze(-1)

    # --- persistence --------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        state = {}
        for k, (W, b) in enumerate(self._weights):
            state[f"layer{k}.weight"] = W  # (in, out)
            state[f"layer{k}.bias"] = b
        state["target.mean_std"] = np.array([self._y_mean, self._y_std], np.float64)
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        n = sum(1 for k in state if k.endswith(".weight"))
        self._weights = [
            (np.ascontiguousarray(state[f"layer{k}.weight"], np.float32), np.ascontiguousarray(state[f"layer{k}.bias"], np.float32))
            for k in range(n)
        ]
        check_chain([(W.shape, b.shape) for W, b in self._weights])
        self._y_mean, self._y_std = (float(v) for v in state["target.mean_std"])
        self._n_in = self._weights[0][0].shape[0]
        self._tcache = None

    @property
    def fitted(self) -> bool:
        return self._weights is not None


@register_predictor("mlp-plus")
class MLPPlusPredictor(MLPPredictor):
    """A variant of the LPM (not the paper's): the same 112-256-64-1 sigmoid network and target
    scaling, trained with AdamW and a cosine learning-rate decay to zero for 300 epochs; it needs
    fewer training architectures for the same error."""

    state_spec = {**MLPPredictor.state_spec, "member*.layer*.weight": ("float32", (None, None)),
                  "member*.layer*.bias": ("float32", (None,))}

    def __init__(
        self,
        hidden: tuple[int, ...] = (256, 64),
        epochs: int = 300,
        batch_size: int = 200,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        loss: str = "mse",
        huber_delta: float = 0.5,
        members: int = 1,
        seed: int = 0,
        progress: bool = False,
    ):
        super().__init__(hidden=hidden, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.0,
                         weight_decay=weight_decay, seed=seed, progress=progress)
        del self.momentum  # not a parameter of this type
        self.loss = str(loss)
        self.huber_delta = float(huber_delta)
        self.members = int(members)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss[:40]!r}")
        if not self.huber_delta > 0:
            raise ValueError(f"huber_delta must be > 0 (standardised latency units), got {self.huber_delta}")
        if not 1 <= self.members <= MAX_MEMBERS:
            raise ValueError(f"members must be from 1 to {MAX_MEMBERS}, got {self.members}")
        self._member_weights: list | None = None  # each member's layers, while `_weights` is their stack
        self._stack_of_members: list | None = None  # the stack made of them (fine-tuning replaces `_weights`)

    def loss_function(self) -> Any:
        """MSE, or Huber with `huber_delta` (in standard deviations of the training latencies), which
        caps the pull of the few cells whose measurement is off by more than the noise."""

        import torch

        if self.loss == "huber":
            return partial(torch.nn.functional.huber_loss, delta=self.huber_delta)
        return torch.nn.functional.mse_loss

    def _fit(self, ops: np.ndarray, inputs: np.ndarray, y: np.ndarray) -> None:
        if self.members == 1:
            super()._fit(ops, inputs, y)
            self._member_weights = None
            return
        seed, nets = self.seed, []
        try:
            for j in range(self.members):  # member j is the same network trained from seed + j
                self.seed = seed + j
                super()._fit(ops, inputs, y)
                nets.append(self._weights)
        finally:
            self.seed = seed
        self._set_members(nets)

    def _set_members(self, nets: list) -> None:
        """Members' layers -> one network computing their mean (`stack_members`), kept beside them for saving."""
        self._member_weights = nets
        self._weights = self._stack_of_members = stack_members(nets)
        self._tcache = None

    def _state(self) -> dict[str, np.ndarray]:
        if self._member_weights is None or self._weights is not self._stack_of_members:
            return super()._state()  # one network (or a stack that was fine-tuned since: saved as it is)
        state = {}
        for j, net in enumerate(self._member_weights):
            for k, (W, b) in enumerate(net):
                state[f"member{j}.layer{k}.weight"] = W
                state[f"member{j}.layer{k}.bias"] = b
        state["target.mean_std"] = np.array([self._y_mean, self._y_std], np.float64)
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        if not any(k.startswith("member") for k in state):
            self._member_weights = None
            self.members = 1  # one network (a file from before `members`, or a fine-tuned stack): say so
            return super()._load_state(state)
        nets = members_from_state(state)
        super()._load_state({**{f"layer{k}.{part}": v for k, (W, b) in enumerate(nets[0])
                                for part, v in (("weight", W), ("bias", b))},
                             "target.mean_std": state["target.mean_std"]})
        self._set_members(nets)

    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """Adam (decoupled weight decay when `weight_decay` > 0)."""
        import torch

        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def make_scheduler(self, opt: Any, n: int) -> Any:
        """Cosine decay from `lr` to 0 over all batches of all epochs."""
        import torch

        steps = max(1, self.epochs * -(-n // self.batch_size))
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
