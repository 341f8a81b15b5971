"""The evaluator's tally: per-example correctness of every (target, setting, attack, eps), chunk
after chunk, turned into records (one per key, with the per-example bits behind its error rates),
counted by the rule of `robustmix.store.results.count_clean_errors`: an example wrong without attack
is wrong under every attack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..attacks import ATTACKS, NO_ATTACK
from ..models.predict import percent_wrong, topk_correct
from ..runtime import distributed
from ..store.checkpoint import Checkpoint
from ..store.results import count_clean_errors
from .plan import nested
from .probes import bad_gradients, probe_budget

if TYPE_CHECKING:
    from .config import EvalConfig


def adversarial_of(meta: dict) -> dict:
    """{"adversarial": its label} for an adversarially trained checkpoint ("PGD-AT (ε = 8/255, 10 steps)"),
    else {} (records of other checkpoints stay as they were)."""
    label = (meta.get("adversarial") or {}).get("label") if isinstance(meta.get("adversarial"), dict) else None
    return {"adversarial": label} if label else {}


def _bits(mask: torch.Tensor) -> str:
    return "".join("1" if b else "0" for b in mask.tolist())


class Tally:
    """Per-example correctness of every (target, setting, attack, eps), chunk after chunk, kept on
    the device until the end; then the records."""

    def __init__(self, gradients: bool = False) -> None:
        self.top1: dict[tuple, list[torch.Tensor]] = {}
        self.top5: dict[tuple, list[torch.Tensor]] = {}
        self.classes: dict[tuple, int] = {}
        self.gradients = gradients  # count bad input gradients at x (the "gradients" probe)
        self.bad: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def add(self, key: tuple, logits: torch.Tensor, y: torch.Tensor, probe: str = "") -> None:
        key = (*key, probe)
        self.top1.setdefault(key, []).append(topk_correct(logits, y, 1))
        self.top5.setdefault(key, []).append(topk_correct(logits, y, 5))
        self.classes[key] = logits.shape[1]

    def add_gradient(self, name: str, grad: torch.Tensor) -> None:
        if self.gradients:
            self.bad.setdefault(name, []).append(bad_gradients(grad))

    def records(self, targets: list[Checkpoint], surrogate: Checkpoint | None, config: EvalConfig,
                world: distributed.World) -> list[dict]:
        metas = {t.name: t.meta for t in targets}
        crafted = [a for a in config.attacks if a in ATTACKS]
        records = []
        for key in self.top1:
            name, setting, attack, e, probe = key
            # Under torchrun each rank scored its contiguous shard; gathered in rank order they are
            # the whole set in its original order, so the records equal a single process's.
            c1 = distributed.gather_cat(torch.cat(self.top1[key]), world).cpu()
            c5 = distributed.gather_cat(torch.cat(self.top5[key]), world).cpu()
            meta = metas[name]
            records.append(
                {
                    "target": name,
                    "method": meta.get("method", "?"),
                    "alpha": meta.get("alpha"),
                    "seed": meta.get("seed"),
                    "setting": setting,
                    "attack": attack,
                    "iters": 0 if attack == NO_ATTACK else ATTACKS[attack].record_iters(probe_budget(config.budget, probe)),
                    "eps": e,
                    "eps_255": round(e * 255, 6),
                    "surrogate": surrogate.name if setting == "black-box" else None,
                    "n": int(c1.numel()),
                    "top1_err": percent_wrong(int((~c1).sum()), c1.numel()),
                    "top5_err": percent_wrong(int((~c5).sum()), c5.numel()),
                    "top1_correct": _bits(c1),
                    "top5_correct": _bits(c5),
                    "amp": config.amp,
                    **({} if attack == NO_ATTACK else ATTACKS[attack].settings(probe_budget(config.budget, probe))),
                    **({"probe": probe, "num_classes": self.classes[key]} if probe else {}),
                    # in a cascade, an attack after the first ran on the examples the ones before it left (it counts what it adds)
                    **({"on_survivors": True} if config.cascade and setting == "white-box" and not probe and attack != crafted[0] else {}),
                    # nested over eps: the examples this attack fooled at a smaller eps carry that image (docs/protocol.md#nested-eps)
                    **({"nested": True} if nested(attack, setting, config.nest_eps, config.eps, probe) and e > min(config.eps) else {}),
                    **adversarial_of(meta),
                }
            )
        for name, flags in self.bad.items():
            zero = distributed.gather_cat(torch.cat([z for z, _ in flags]), world)
            nonfinite = distributed.gather_cat(torch.cat([f for _, f in flags]), world)
            records.append({"target": name, "setting": "white-box", "attack": NO_ATTACK, "probe": "gradients", "eps": 0.0,
                            "eps_255": 0.0, "n": int(zero.numel()), "zero": int(zero.sum()), "nonfinite": int(nonfinite.sum())})
        return count_clean_errors(records)
