"""Fixed-length token-id sequences with provenance, and the seeded shuffling of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hyperfit_core.atomic import atomic_path
from hyperfit_core.errors import HyperfitError


@dataclass
class TokenSequences:
    """`ids[i]` is one training sequence (first token = SOS/BOS); `source_index[i]` says where it came from."""

    ids: torch.Tensor
    source_index: torch.Tensor

    def __post_init__(self):
        self.ids = torch.as_tensor(self.ids, dtype=torch.long)
        self.source_index = torch.as_tensor(self.source_index, dtype=torch.long)
        if self.ids.ndim != 2:
            raise HyperfitError(f"token sequences must be a 2-D (count, length) array, got shape {tuple(self.ids.shape)}")
        if len(self.ids) == 0:
            raise HyperfitError("the dataset is empty: no sequences to train on")
        if self.source_index.shape != (len(self.ids),):
            raise HyperfitError("source_index must have one entry per sequence")

    @classmethod
    def from_ids(cls, ids) -> "TokenSequences":
        ids = torch.as_tensor(ids, dtype=torch.long)
        return cls(ids, torch.arange(len(ids)))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def length(self) -> int:
        return self.ids.shape[1]

    def subset(self, index) -> "TokenSequences":
        index = torch.as_tensor(index, dtype=torch.long)
        return TokenSequences(self.ids[index], self.source_index[index])

    def check_fits(self, max_positions: int) -> None:
        """Training feeds ids[:, :-1], so a sequence may be one token longer than the model's positions."""
        if self.length - 1 > max_positions:
            raise HyperfitError(
                f"sequences of {self.length} tokens need {self.length - 1} positions but the model has {max_positions}")

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            save_file({"ids": self.ids.contiguous(), "source_index": self.source_index.contiguous()}, str(tmp))

    @classmethod
    def load(cls, path: str | Path) -> "TokenSequences":
        path = Path(path)
        if not path.is_file():
            raise HyperfitError(f"token file not found: {path}")
        try:
            tensors = load_file(str(path))
            return cls(tensors["ids"], tensors["source_index"])
        except HyperfitError:
            raise
        except Exception as exc:
            raise HyperfitError(f"cannot read token file {path}: {exc}") from None


def epoch_order(n: int, seed: int, epoch: int, swaps: int = 0) -> torch.Tensor:
    """The shuffled order of epoch `epoch`: a pure function of (seed, epoch), so resuming needs no RNG state and
    every process count trains on the same order.

    `swaps` exchanges that many random pairs of positions afterwards, drawn from their own generator, so
    `swaps=1` is the paper's Shuffle-1: the same order as `swaps=0` but for one pair.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    if swaps and n > 1:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + (1 << 40))
        for _ in range(swaps):
            i, j = torch.randperm(n, generator=generator)[:2].tolist()
            order[i], order[j] = order[j].clone(), order[i].clone()
    return order
