"""A restricted unpickler for detectron2 ``.pkl`` checkpoints: numpy arrays and plain containers.

``pickle.load`` runs whatever callable a file names; this reader resolves only the handful of
globals a pickled dict of numpy arrays needs (array and scalar reconstruction, dtypes, OrderedDict,
``_codecs.encode`` for protocol-2 bytes) and refuses any other with a one-line CheckpointError,
before anything from the file is called.
"""
from __future__ import annotations

import codecs
import collections
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import CheckpointError

_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = np.ndarray.__reduce__(np.zeros(0))[0]
    _ALLOWED[(_mod, "scalar")] = np.float32(0).__reduce__()[0]
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = np.zeros(0).__reduce_ex__(5)[0]  # protocol-5 arrays


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None and module in ("numpy", "numpy.dtypes") and name.endswith("DType"):
            found = getattr(np.dtypes, name, None) if hasattr(np, "dtypes") else None
        if found is None:
            raise CheckpointError(f"refused: the file asks for {module}.{name}; a detectron2 "
                                  "checkpoint holds only numpy arrays and plain containers")
        return found


def load_numpy_pickle(path: str | Path) -> Any:
    """The object in ``path`` if it is built from numpy arrays and plain containers only."""
    try:
        with open(path, "rb") as f:
            return _Restricted(f, encoding="latin1").load()
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a readable pickle ({type(exc).__name__})") from None
