"""`robustmix import SOURCE`: bring a model trained elsewhere in as a robustmix checkpoint folder,
after checking its clean error, normalisation, class order and outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..importing.importer import ROLES, ImportConfig, import_source, save_imported
from ..runtime.devices import resolve_device
from ..runtime.errors import RobustmixError
from .common import finite_float, nonneg_float, say

HELP = ("import a model from torchvision, timm, TorchScript, torch.export or a state dict as a checkpoint folder; "
        "refuses (exit 2) a likely wrong normalisation, a permuted class order or probability outputs")


def float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(finite_float(p.strip()) for p in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers (e.g. 0.485,0.456,0.406)") from None
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("source", metavar="SOURCE", help="torchvision:ARCH, timm:ARCH or robustmix:MODEL (with --weights), or a TorchScript "
      "file (torch.jit.save) or a torch.export program (.pt2, torch.export.save)")
    a("--dataset", required=True, help="the data set the model was trained on (its test set gives the clean error): digits, cifar10, ... or imagefolder:ROOT")
    a("--out", type=Path, required=True, help="checkpoint folder to write, e.g. runs/my-resnet (never replaced unless --overwrite)")
    a("--weights", default=None, help="state dict for torchvision:/timm:/robustmix: sources: .safetensors, or a torch.save file "
      "loaded with torch.load(weights_only=True), which refuses pickled code")
    a("--mean", type=float_list, default=None, help="the network expects inputs normalised with this per-channel mean, in [0, 1] "
      "units (e.g. 0.485,0.456,0.406); robustmix adds the layer, so attacks still see [0, 1] pixels")
    a("--std", type=float_list, default=None, help="the per-channel std that goes with --mean, in [0, 1] units")
    a("--expects-normalized", action="store_true", help="the network expects the data set's usual mean/std (the per-channel "
      "statistics of its training pixels, as robustmix train uses; robustmix adds the layer); without this or --mean/--std, "
      "the network must take [0, 1] pixels itself")
    a("--bgr", action="store_true", help="the network expects BGR channel order (robustmix reverses the channels first)")
    a("--class-order", default=None, help="comma-separated: the data-set class (name or index) each output of the network "
      "stands for, when its order differs from the data set's")
    a("--role", choices=ROLES, default="target", help="target (attacked) or surrogate (crafts black-box examples); default target")
    a("--method", default="imported", help="how the model was trained, for report labels (e.g. erm, mixup; default imported)")
    a("--alpha", type=nonneg_float, default=None, help="its mixing alpha, for report labels")
    a("--force", action="store_true", help="import despite a diagnosed mistake; the warning is recorded in meta.json")
    a("--overwrite", action="store_true", help="replace an existing folder at --out")
    a("--device", default="auto", help="where the checks run: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)")


def run(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.overwrite:  # fail before reading anything
        raise RobustmixError(f"{args.out} already exists: pass --overwrite to replace it, or choose another --out")
    config = ImportConfig(
        source=args.source, dataset=args.dataset, weights=args.weights, mean=args.mean, std=args.std,
        expects_normalized=args.expects_normalized, bgr=args.bgr,
        class_order=tuple(p.strip() for p in args.class_order.split(",")) if args.class_order else None,
        role=args.role, method=args.method, alpha=args.alpha, force=args.force,
    )
    model, meta, program = import_source(config, name=args.out.name, device=resolve_device(args.device))
    imp = meta["import"]
    norm = imp["normalization"]
    stats = f"mean {','.join(f'{v:.4g}' for v in norm['mean'])}, std {','.join(f'{v:.4g}' for v in norm['std'])}"
    how = {"none": "none (the network takes [0, 1] pixels)", "dataset": f"the data set's {stats}", "custom": stats}[norm["kind"]]
    say(f"{imp['source']} model on {meta['dataset']}: clean top-1 error {meta['clean_top1_err']:.2f}% "
        f"(top-5 {meta['clean_top5_err']:.2f}%); normalisation: {how}{'; BGR input' if norm['bgr'] else ''}"
        f"{'; class order ' + ','.join(map(str, imp['class_order'])) if imp['class_order'] else ''}")
    for w in imp["warnings"] if imp["forced"] else []:
        say(f"robustmix import: warning: imported despite: {w}")
    save_imported(args.out, model, meta, program, overwrite=args.overwrite)
    say(f"wrote {args.out} (role {meta['role']})")
    print(args.out)
    return 0
