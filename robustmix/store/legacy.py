"""Plain state dicts from legacy PyTorch files (.pt/.pth), read without unpickling code: shared by
checkpoint loading (--allow-legacy) and the importer."""

from __future__ import annotations

from pathlib import Path

import torch

from ..runtime.errors import RobustmixError


def load_legacy_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pt/.pth file through torch.load(weights_only=True): never runs pickled code."""
    import pickle
    import re
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: not for the user's terminal
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported (global: GLOBAL \S+|operand \d+)|Unsupported class \S+", str(e))
        why = found.group(0) if found else "not a plain state dict"
        raise RobustmixError(
            f"{path}: refused, the file carries pickled code or objects other than tensors ({why}; nothing was run): "
            "only plain state dicts load; re-save it with torch.save(model.state_dict(), ...)"
        ) from None
    except Exception as e:  # torch.load raises many types on truncated or corrupt input
        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0]
        raise RobustmixError(
            f"{path}: truncated or corrupt PyTorch file ({e.__class__.__name__}: {first[:120]}): restore or re-save it"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise RobustmixError(f"{path}: not a state dict (a dict of name -> tensor): save model.state_dict(), not the model")
    return state
