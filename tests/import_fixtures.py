"""Models trained here, exported every way `robustmix import` reads (for the import tests)."""

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

PERM = [5, 6, 1, 2, 0, 8, 9, 3, 7, 4]  # output k of the permuted exports stands for class PERM[k]


class Bare(nn.Module):
    """A robustmix SmallCNN without its normalisation layer: expects normalised input."""

    def __init__(self, model):
        super().__init__()
        self.features, self.drop, self.head = model.features, model.drop, model.head

    def forward(self, x):
        return self.head(self.drop(self.features(x)))


class Permuted(nn.Module):
    """Outputs in another class order: output k is the logit of class PERM[k]."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.register_buffer("perm", torch.tensor(PERM))

    def forward(self, x):
        return self.model(x).index_select(1, self.perm)


def export_pt2(module: nn.Module, x: torch.Tensor, path: Path) -> Path:
    """torch.export with a dynamic batch dimension (a program fixed to one batch size cannot be attacked in batches)."""
    program = torch.export.export(module.eval(), (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)
    return path


def script(module: nn.Module, path: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        torch.jit.script(module.eval()).save(str(path))
    return path


def trace(module: nn.Module, x: torch.Tensor, path: Path) -> Path:
    """Traced in the module's own mode: a module in train mode bakes batch statistics into the trace."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(module, x[:4]).save(str(path))
    return path


def write_exports(folder: Path, model: nn.Module, x: torch.Tensor) -> dict[str, Path]:
    """Every file the import tests read, from one trained SmallCNN (model in eval mode)."""
    model.eval()
    f = {
        "scripted": script(model, folder / "cnn.ts"),
        "traced": trace(model.eval(), x, folder / "cnn-traced.ts"),
        "exported": export_pt2(model, x, folder / "cnn.pt2"),
        "bare-scripted": script(Bare(model), folder / "bare.ts"),
        "bare-exported": export_pt2(Bare(model), x, folder / "bare.pt2"),
        "permuted": export_pt2(Permuted(model), x, folder / "permuted.pt2"),
        "softmax": script(nn.Sequential(model, nn.Softmax(dim=1)), folder / "softmax.ts"),
        "state-dict": folder / "cnn.pt",
        "safetensors": folder / "cnn.safetensors",
    }
    torch.save(model.state_dict(), f["state-dict"])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(f["safetensors"]))
    return f
