"""Where the exporter reads weights from, one tensor at a time, as float32 numpy.

Real checkpoints (Llama-3-8B: 32 GB in float32) do not fit in memory twice, so the graph
builder asks for each tensor when it needs it and drops it once written. Safetensors
checkpoints are read lazily; anything else is loaded through transformers once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np


class WeightSource(Protocol):
    def has(self, name: str) -> bool: ...

    def get(self, name: str) -> np.ndarray: ...


def _to_numpy(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return np.ascontiguousarray(t, dtype=np.float32)
    # torch tensor, possibly bfloat16 (which numpy cannot hold): upcast in torch first.
    return np.ascontiguousarray(t.detach().to("cpu").float().numpy())


class StateDictWeights:
    """A model's state_dict (torch tensors or numpy arrays)."""

    def __init__(self, state_dict):
        self._sd = state_dict

    def has(self, name: str) -> bool:
        return name in self._sd

    def get(self, name: str) -> np.ndarray:
        if name not in self._sd:
            raise KeyError(f"checkpoint has no tensor {name!r}")
        return _to_numpy(self._sd[name])


class SafetensorsWeights:
    """Lazy reader over `model.safetensors` or a sharded `model.safetensors.index.json`."""

    def __init__(self, directory: Path):
        from safetensors import safe_open

        directory = Path(directory)
        index = directory / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
        else:
            files = sorted(p.name for p in directory.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors in {directory}")
        self._handles = {f: safe_open(str(directory / f), framework="pt") for f in files}
        self._where: dict[str, str] = {}
        for f, h in self._handles.items():
            for k in h.keys():
                self._where[k] = f

    def has(self, name: str) -> bool:
        return name in self._where

    def get(self, name: str) -> np.ndarray:
        if name not in self._where:
            raise KeyError(f"checkpoint has no tensor {name!r}")
        return _to_numpy(self._handles[self._where[name]].get_tensor(name))


def checkpoint_weights(directory: Path) -> WeightSource:
    directory = Path(directory)
    if any(directory.glob("*.safetensors")):
        return SafetensorsWeights(directory)
    # .bin / other formats: let transformers load it (needs the whole model in memory).
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
    return StateDictWeights(model.state_dict())
