"""Classifier-free guidance (Ho & Salimans 2022): one class-conditional net, two scores.

A net trained with its label dropped to a learned null class with probability p (`drop_labels`)
is both s(x, sigma, c) and s(x, sigma, null). The guided score

    s~(x, sigma) = s(x, sigma, null) + (1 + w) (s(x, sigma, c) - s(x, sigma, null))

(their eq. 6 in score form; w = 0 is the plain conditional, w > 0 sharpens toward the class) is one
more function s(x, sigma), so every sampler, the field view and the metrics use it unchanged:
`Guided` wraps a net, `exact_guided` a labelled Gaussian mixture (the truth to test it against).
Its stationary density at one sigma is p(x | c)^(1+w) / p(x)^w, not p(x | c): large w concentrates
the samples and pushes them away from the other classes, past the class's own modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from .gmm import GaussianMixture

if TYPE_CHECKING:
    from .datasets import Dataset


def drop_labels(labels: torch.Tensor, p: float, null_class: int, generator: torch.Generator) -> torch.Tensor:
    """Each label replaced by the null class with probability p (the training-time dropout that
    teaches one net the unconditional score too). Randomness from `generator` (a CPU one)."""
    if p <= 0:
        return labels
    drop = torch.rand(labels.shape, generator=generator, device=generator.device).to(labels.device) < p
    return torch.where(drop, torch.full_like(labels, null_class), labels)


class WithLabels:
    """A class-conditional net as a plain score function s(x, sigma) for one batch: row i gets
    class labels[i]. The losses see a score function; the trainer binds each batch's labels."""

    def __init__(self, model: nn.Module, labels: torch.Tensor) -> None:
        self.model, self.labels = model, labels

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.model(x, sigma, self.labels)


class Guided(nn.Module):
    """s~ = s(x, sigma, null) + (1 + w)(s(x, sigma, c) - s(x, sigma, null)) of a class-conditional net.

    A module (holding the net), so `.parameters()`, `.to()`, `.eval()` and a deep copy work as on
    the net; `output` is the net's parameterisation. Both scores come from one batched call. An
    energy net's guided energy (1 + w) E_c - w E_null gives MALA its log-density.
    """

    def __init__(self, model: nn.Module, c: int, guidance: float = 0.0) -> None:
        super().__init__()
        n_classes = int(getattr(model, "n_classes", 0))
        if not 0 <= int(c) < n_classes:
            raise ValueError(f"class index {c} is not one of the net's {n_classes} classes")
        self.model, self.c, self.guidance = model, int(c), float(guidance)

    @property
    def output(self):
        return self.model.output

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def n_classes(self) -> int:
        return self.model.n_classes

    def _pair(self, x: torch.Tensor, sigma: torch.Tensor | float, fn: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        """fn at (x, c) and at (x, null), in one call on the doubled batch."""
        n = x.shape[0]
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1).expand(n)
        labels = torch.cat([torch.full((n,), self.c, dtype=torch.int64, device=x.device),
                            torch.full((n,), self.model.null_class, dtype=torch.int64, device=x.device)])
        both = fn(torch.cat([x, x]), torch.cat([sig, sig]), labels)
        return both[:n], both[n:]

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        if self.guidance == 0.0:
            return self.model(x, sigma, self.c)
        cond, uncond = self._pair(x, sigma, self.model)
        return uncond + (1.0 + self.guidance) * (cond - uncond)

    def _guided_energy(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """(1 + w) E(x, sigma, c) - w E(x, sigma, null)."""
        cond, uncond = self._pair(x, sigma, self.model.energy)
        return (1.0 + self.guidance) * cond - self.guidance * uncond

    def __getattr__(self, name: str):
        # `energy` exists exactly when the net has one, as `samplers.log_density_of` asks.
        if name == "energy":
            if hasattr(self.model, "energy"):
                return self._guided_energy
            raise AttributeError(name)
        return super().__getattr__(name)


def guided(model: nn.Module, c: int | None, guidance: float = 0.0) -> nn.Module:
    """The score function to sample: the net itself when c is None (unconditional: a conditional
    net's null class), else `Guided`."""
    return model if c is None else Guided(model, c, guidance)


@dataclass(frozen=True)
class ExactGuided:
    """The exact guided score of a labelled mixture at every sigma (and its log-density, for MALA):
    the truth `Guided` is tested against, and what the window draws as the true guided field."""

    mixture: GaussianMixture  # labelled, in the coordinates the score is wanted in
    c: int
    guidance: float = 0.0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        return self.mixture.guided_score(x, sigma, self.c, self.guidance)

    def log_density(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = float(torch.as_tensor(sigma).reshape(-1)[0])
        return self.mixture.guided_log_prob(x, s, self.c, self.guidance)


def class_draws(dataset: Dataset, c: int) -> Callable[[int, torch.Generator], torch.Tensor]:
    """Fresh draws of class c of a labelled dataset: its labelled sampler's draws of that class,
    drawn in rounds until there are n."""
    def sample(n: int, g: torch.Generator) -> torch.Tensor:
        got, have = [], 0
        for _ in range(1000):
            x, lab = dataset.sample_labelled(max(2 * n, 64), g)
            got.append(x[lab == c])
            have += len(got[-1])
            if have >= n:
                break
        return torch.cat(got)[:n]
    return sample


def class_reference(dataset: Dataset, c: int) -> Dataset:
    """Class c of a labelled dataset as a dataset of its own: what samples asked for class c are
    scored against (the live metrics, `sgm steps --class`). A labelled mixture's class is exact
    (`GaussianMixture.given_class`: its modes and their renormalised weights); other data's is its
    labelled sampler's draws of c. Under guidance w > 0 this is still the class's density, not the
    guided one (Ho & Salimans 2022): the metrics say how far guidance moves the samples from it."""
    from .datasets import Dataset

    if dataset.labels is None:
        raise ValueError("this dataset has no class labels")
    name = f"{dataset.name}, class {dataset.classes[c]}"
    points = dataset.points[dataset.labels == c]
    gmm = dataset.gmm
    if gmm is not None and gmm.labels is not None:
        own = gmm.given_class(c)
        return Dataset(name, points, own.sample, own)
    return Dataset(name, points, class_draws(dataset, c))
