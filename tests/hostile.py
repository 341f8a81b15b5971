"""Hostile pickles for the file-safety tests: unpickling one creates a marker file `PWNED` in
the current folder (builtins.open(..., "w")), so a test can see whether any code ran."""

import builtins
import pickle

import torch

MARKER = "PWNED"


class Payload:
    def __reduce__(self):
        return (builtins.open, (MARKER, "w"))


def write_hostile_pt(path) -> None:
    """A torch.save zip file whose state dict carries the payload beside a real tensor."""
    torch.save({"head.bias": torch.zeros(10), "extra": Payload()}, path)


def write_hostile_raw(path) -> None:
    """A plain (legacy, non-zip) pickle carrying the payload."""
    with open(path, "wb") as f:
        pickle.dump({"head.bias": Payload()}, f, protocol=2)
