"""A ``torch.utils.data.Dataset`` over a datagen HDF5 file, safe with ``num_workers > 0``."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

import operators

from .store import SPLITS, op_names, open_file, pair_datasets

#: the ways an item can carry γ (``PairDataset(gamma_as=...)``)
GAMMA_AS = ("value", "float32", "normalized")

#: the normalised γ of a fixed-effect operator (no γ at all): the middle of the [0, 1] scale, the
#: constant the project's models use in its place with ``--norm law``
#: (``model.config.CONST_GAMMA["law"]``; tests/test_packaging.py checks they agree)
FIXED_EFFECT_NORMALIZED = 0.5


class PairDataset(Dataset):
    """(input, target, γ, operator) samples of one split ("train", "test" or "single").

    Each item is a dict: ``input`` and ``target`` uint8 tensors (3, h, w), ``gamma`` (see
    ``gamma_as``), ``gamma_effective`` (float: the γ the operator used, e.g. WMF's rounded radius;
    NaN for a fixed-effect operator), ``op`` (name) and ``op_index`` (position in ``ops``). A filter's input is its source crop and its target the
    MATLAB-rounded operator output; a degradation's input is the degraded image and its target
    the clean one (``/ops/<op>/input`` and ``target``). Single-channel pairs (sr, jpeg: Y;
    denoise: gray) are replicated to three equal channels, as the authors' loader did, so a
    model sees 3-channel tensors for every operator. The HDF5 handle is opened lazily in each
    process that reads (an h5py handle must not cross a fork), so ``DataLoader(num_workers=k)``
    is safe.

    ``sizes`` gives each operator's stored side (``sr``'s is the crop size less its remainder
    modulo 12); ``size`` is the smallest, the largest ``crop`` allowed.

    Parameters
    ----------
    path : the HDF5 file written by ``python -m datagen build``.
    ops : operators to include (names or groups, case-insensitive, as
        :func:`operators.resolve`; default: all in the file), in this order for ``op_index``.
    split : ``"train"`` or ``"test"``.
    crop : random crop size (even, <= the stored size), or None for whole samples.
    flip : random horizontal/vertical flips (same for input and target).
    gamma : keep only pairs with this γ (e.g. the single-γ baseline on test data).
    gamma_as : how ``item["gamma"]`` carries γ:

        * ``"value"`` (default; what ``model train`` uses): a Python float, γ as sampled (float64
          precision; a batch collates to a float64 tensor); NaN for a fixed-effect operator
          (shock, llf_remap, wls_enhance, style, pencil: no γ).
        * ``"float32"``: a 0-d ``torch.float32`` tensor of γ as sampled (a batch collates to a
          float32 ``(N,)`` tensor); NaN for a fixed-effect operator.
        * ``"normalized"``: a 0-d ``torch.float32`` tensor, γ mapped to [0, 1] over the
          operator's training range by :meth:`operators.OperatorSpec.normalize` (log scale for
          log-uniform laws, e.g. L0's λ 0.002 → 0, 0.02 → 0.5, 0.2 → 1); a fixed-effect operator
          gives :data:`FIXED_EFFECT_NORMALIZED` (0.5), never NaN. The value to feed a network
          conditioned on γ.
    transform : called on each item (the dict above, after crop and flip) and returning the item
        to yield, e.g. to convert to float or to add augmentations. It runs in the DataLoader
        worker, so with ``num_workers > 0`` it must be picklable (a module-level function).
    """

    def __init__(self, path, ops=None, split: str = "train", *, crop: int | None = None,
                 flip: bool = False, gamma: float | None = None, gamma_as: str = "value",
                 transform=None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if gamma_as not in GAMMA_AS:
            raise ValueError(f"gamma_as must be one of {list(GAMMA_AS)}, got {gamma_as!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.gamma_as, self.transform = gamma_as, transform
        self.path = str(path)
        self.crop, self.flip = crop, flip
        with open_file(path) as f:
            available = op_names(f)
            self.ops = operators.resolve(ops) if ops else tuple(available)
            missing = [o for o in self.ops if o not in available]
            if missing:
                raise ValueError(f"{path} has no pairs for {missing}; it has {available}")
            self.sizes, self._where = {}, {}
            index, self._gamma = [], {}
            for k, name in enumerate(self.ops):
                g = f["ops"][name]
                self.sizes[name] = int(g.attrs.get("pair_size", f.attrs["size"]))
                self._where[name] = pair_datasets(f, name)
                sel = g["split"][:] == SPLITS[split]
                if gamma is not None:
                    sel &= np.isclose(g["gamma"][:], gamma, rtol=1e-9, atol=0)
                rows = np.flatnonzero(sel)
                index.append(np.stack([np.full(len(rows), k), rows, g["source"][:][rows]], 1))
                self._gamma[name] = (g["gamma"][:], g["gamma_effective"][:])
            self.size = min(self.sizes.values(), default=int(f.attrs["size"]))
        self.index = np.concatenate(index) if index else np.zeros((0, 3), int)
        if crop is not None and not (2 <= crop <= self.size and crop % 2 == 0):
            small = [f"{n}: {v}" for n, v in self.sizes.items() if v == self.size]
            raise ValueError(f"crop must be even and in [2, {self.size}] (the smallest stored pair "
                             f"side, {', '.join(small)}), got {crop}")
        self._file = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.index)

    def gamma_values(self, op: str) -> np.ndarray:
        """The sampled γ of this dataset's pairs of operator ``op``."""
        k = self.ops.index(op)
        return self._gamma[op][0][self.index[self.index[:, 0] == k, 1]]

    def _handle(self):
        if self._file is None or self._pid != os.getpid():
            self._file = open_file(self.path)
            self._pid = os.getpid()
        return self._file

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None  # handles never travel to worker processes
        return state

    def __getitem__(self, key) -> dict:
        """``key`` is an index, or ``(index, seed)`` to make the random crop/flip a function of
        the seed (reproducible training and exact resumption, whatever the worker)."""
        if isinstance(key, tuple):
            i, seed = key
            rng = np.random.default_rng(seed)
            draw = lambda hi: int(rng.integers(0, hi))  # noqa: E731
            coin = lambda: rng.random() < 0.5  # noqa: E731
        else:
            i = key
            draw = lambda hi: int(torch.randint(0, hi, ()))  # noqa: E731
            coin = lambda: bool(torch.rand(()) < 0.5)  # noqa: E731
        k, row, src = (int(v) for v in self.index[i])
        name = self.ops[k]
        f = self._handle()
        inp, tgt = self._where[name]
        g = f["ops"][name]
        x = f["sources/pixels"][src] if inp is None else g[inp][row]
        y = g[tgt][row]
        size = self.sizes[name]
        if self.crop is not None and self.crop < size:
            top, left = draw(size - self.crop + 1), draw(size - self.crop + 1)
            x = x[top:top + self.crop, left:left + self.crop]
            y = y[top:top + self.crop, left:left + self.crop]
        if x.ndim == 2:  # single-channel pair: three equal channels, as the authors' loader
            x, y = np.repeat(x[:, :, None], 3, axis=2), np.repeat(y[:, :, None], 3, axis=2)
        if self.flip:
            if coin():
                x, y = x[:, ::-1], y[:, ::-1]
            if coin():
                x, y = x[::-1], y[::-1]
        gamma, geff = self._gamma[name]
        item = {
            "input": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
            "target": torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1))),
            "gamma": self._gamma_item(name, float(gamma[row])),
            "gamma_effective": float(geff[row]), "op": name, "op_index": k,
        }
        return item if self.transform is None else self.transform(item)

    def _gamma_item(self, op: str, g: float):
        """``item["gamma"]`` in the form ``gamma_as`` asks for (see the class docstring)."""
        if self.gamma_as == "value":
            return g
        if self.gamma_as == "normalized":
            spec = operators.get(op)
            g = float(spec.normalize(g)) if spec.has_gamma else FIXED_EFFECT_NORMALIZED
        return torch.tensor(g, dtype=torch.float32)
