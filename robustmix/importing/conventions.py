"""The checks `robustmix import` (and `robustmix.import_model`) run before anything is written.

1. The forward pass: one logits tensor of N × (the data set's classes), finite; buffers (batch-norm
   statistics) unchanged by a pass in eval mode, else the network was traced or exported in
   training mode (refused: evaluations would move it). Two passes that differ: a warning
   (a randomized model), as `robustmix attack` gives.
2. The clean test error, on the whole test set.
3. Diagnoses of the usual mistakes, each refused with a one-line message naming it, unless forced
   (then recorded in meta.json as a warning):
   - probabilities instead of logits: every output row in [0, 1] and summing to 1 (within 1e-3);
   - the wrong normalisation: another input convention (none, the data set's usual mean/std,
     ImageNet's for 3-channel data, colour channels reversed) gives a far lower error (`_far_lower`:
     GAP points lower, or half and MIN_GAP points lower) on a probe of up to PROBE test images;
   - a permuted class order: the best one-to-one matching of outputs to classes (Hungarian
     assignment on the confusion matrix, scipy) gives the moved classes a far lower error than the
     identity does.
   A correct model passes all three: its own convention and order are the best ones by far.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import Dataset, pixels, stratified_subset
from ..models.imported import ImportedModel
from ..models.predict import topk_error
from ..runtime.errors import RobustmixError, RobustmixWarning
from .sources import IMAGENET, Normalization

GAP = 20.0  # percentage points by which another convention must lower the error to be "far lower" ...
MIN_GAP = 5.0  # ... or at least these points when it also halves it (see _far_lower)
PROBE = 1000  # test images scored under each alternative normalisation
PROB_TOL = 1e-3

# How messages name the options: on the command line, or as keyword arguments of import_model.
FLAGS = {
    "cli": {"mean": "--mean/--std", "normalized": "--expects-normalized", "bgr": "--bgr", "order": "--class-order {o}",
            "force": "--force", "values": "--mean {m} --std {s}"},
    "api": {"mean": "mean/std", "normalized": "expects_normalized=True", "bgr": "bgr=True", "order": "class_order=[{o}]",
            "force": "force=True", "values": "mean=({m}), std=({s})"},
}


@dataclass
class Findings:
    logits: torch.Tensor  # clean logits on the whole test set
    top1: float
    top5: float
    problems: list[str] = field(default_factory=list)  # diagnoses, most basic first
    alternatives: dict[str, float] = field(default_factory=dict)  # probe error under each other convention
    suspected_order: list[int] | None = None
    notes: list[str] = field(default_factory=list)  # warnings that never refuse


@torch.inference_mode()
def forward(model: nn.Module, x: torch.Tensor, name: str = "the model") -> torch.Tensor:
    """model(x), with a failure inside the imported network turned into a one-line RobustmixError."""
    try:
        return model(x)
    except RobustmixError:
        raise
    except Exception as e:  # the network's own error: shape asserts of exported programs, TorchScript errors, ...
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise RobustmixError(
            f"{name} fails on a batch of {x.shape[0]} test images of shape {list(x.shape[1:])} ({first[:160]}): it must "
            "take batches of any size of this data set's images (torch.export: export with a dynamic batch dimension)"
        ) from None


def logits_of(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256, name: str = "the model") -> torch.Tensor:
    return torch.cat([forward(model, pixels(xb.to(device)), name).float() for xb in x.split(batch_size)]).cpu()


def check_forward(model: ImportedModel, x: torch.Tensor, num_classes: int, device: torch.device, name: str) -> list[str]:
    """Step 1 (model in eval mode). Raises on a broken forward pass; returns warnings."""
    probe = pixels(x[:64].to(device))
    before = {k: v.detach().clone() for k, v in model.named_buffers()}
    a, b = forward(model, probe, name), forward(model, probe, name)
    if a.dim() != 2 or a.shape[0] != probe.shape[0]:
        raise RobustmixError(f"{name} returned shape {tuple(a.shape)} for {probe.shape[0]} images: it must return N×classes logits")
    if a.shape[1] != num_classes:
        raise RobustmixError(f"{name} outputs {a.shape[1]} classes but the data set has {num_classes}: import a model trained on this data set")
    if not torch.isfinite(a).all():
        raise RobustmixError(f"{name} returns NaN or inf logits on clean test images: check its weights and normalisation")
    moved = [k for k, v in model.named_buffers() if not torch.equal(v, before[k])]
    if moved:
        raise RobustmixError(
            f"{name} changes its buffers ({moved[0]}) in eval mode: it was traced or exported in training mode "
            "(batch norm on batch statistics); call model.eval() before tracing or exporting it"
        )
    if not torch.equal(a, b):
        return [f"{name} looks randomized (two passes in eval mode differ by up to {(a - b).abs().max().item():.3g}): "
                "its gradients and error rates are unreliable"]
    return []


def probabilities_problem(logits: torch.Tensor, top1: float, f: dict) -> str | None:
    if logits.shape[1] < 2 or logits.min() < 0 or logits.max() > 1:
        return None
    if not torch.allclose(logits.sum(1), torch.ones(len(logits)), atol=PROB_TOL):
        return None
    return (f"the model outputs probabilities (every row in [0, 1], summing to 1; clean error {top1:.1f}%), not logits: "
            "attacks through a softmax see vanishing gradients and look weaker than they are; remove the final softmax")


def _far_lower(err: float, alt: float) -> bool:
    """alt (%) is far lower than err (%): GAP points lower, or at most half and MIN_GAP points lower.
    A correct model can only lose under another convention, so the test needs no more than that; the
    half rule catches a good model that is hurt little (10% -> 4%), the GAP rule a weak one (88% -> 45%)."""
    return err - alt >= GAP or (alt <= err / 2 and err - alt >= MIN_GAP)


def candidates(given: Normalization, data: Dataset) -> dict[str, Normalization]:
    c = data.input_shape[0]
    out = {"none": Normalization("none", (0.0,) * c, (1.0,) * c, given.bgr),
           "dataset": Normalization("dataset", tuple(data.mean), tuple(data.std), given.bgr)}
    if c == 3:
        out["imagenet"] = Normalization("imagenet", *IMAGENET, given.bgr)
        out["channels reversed"] = Normalization(given.kind, given.mean, given.std, not given.bgr)
    same = lambda n: n.mean == given.mean and n.std == given.std and n.bgr == given.bgr  # noqa: E731
    return {k: n for k, n in out.items() if not same(n)}


def normalization_problem(model: ImportedModel, given: Normalization, data: Dataset, logits: torch.Tensor,
                          device: torch.device, f: dict) -> tuple[str | None, dict[str, float]]:
    y = data.y_test
    idx = stratified_subset(y, PROBE, 0) if len(y) > PROBE else torch.arange(len(y))
    err = topk_error(logits[idx], y[idx], 1)
    errors = {}
    for name, norm in candidates(given, data).items():
        alt = model.with_normalization(norm.mean, norm.std, norm.bgr).eval()
        errors[name] = topk_error(logits_of(alt, data.x_test[idx], device), y[idx], 1)
    if not errors:
        return None, errors
    # the lowest error; the data set's own statistics when within a point of it (CIFAR's and ImageNet's are close)
    best = min(errors, key=lambda k: errors[k] - (1.0 if k == "dataset" else 0.0))
    if not _far_lower(err, errors[best]):
        return None, errors
    return normalization_message(given, best, candidates(given, data)[best], err, errors[best], f), errors


def normalization_message(given: Normalization, name: str, best: Normalization, err: float, alt: float, f: dict) -> str:
    head = f"clean error {err:.1f}%"
    if best.bgr != given.bgr:
        verb = "add" if best.bgr else "drop"
        return f"{head}, {alt:.1f}% with the colour channels reversed: the model expects {'BGR' if best.bgr else 'RGB'} input; {verb} {f['bgr']}"
    given_flag = f["mean"] if given.kind == "custom" else f["normalized"]
    if name == "none":
        return f"{head} with {given_flag}, {alt:.1f}% without: the model normalises its own input; drop {given_flag}"
    which = "the data set's mean/std" if name == "dataset" else "ImageNet's mean/std"
    fix = f["normalized"] if name == "dataset" else f["values"].format(m=",".join(map(str, best.mean)), s=",".join(map(str, best.std)))
    if given.kind == "none":
        return f"{head} on [0, 1] pixels, {alt:.1f}% with {which}: the model expects normalised input; add {fix}"
    return f"{head} with {given_flag}, {alt:.1f}% with {which}: the model expects {which}; use {fix} instead"


def class_order_problem(logits: torch.Tensor, y: torch.Tensor, classes, f: dict,
                        current: list[int] | None = None) -> tuple[str | None, list[int] | None]:
    """Hungarian matching of outputs to classes (scipy's linear_sum_assignment on the confusion matrix).
    `current`: the class order the model already applies; the suggested order is for the raw outputs."""
    from scipy.optimize import linear_sum_assignment

    k = logits.shape[1]
    pred = logits.argmax(1)
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((y.cpu(), pred), torch.ones_like(pred), accumulate=True)
    rows, cols = linear_sum_assignment(confusion.numpy(), maximize=True)  # true class rows[i] -> column cols[i]
    moved = [int(r) for r, c in zip(rows, cols) if r != c]
    if not moved:
        return None, None
    n = max(int(confusion[moved].sum()), 1)
    raw = 100.0 * (1 - sum(int(confusion[r, r]) for r in moved) / n)
    matched = 100.0 * (1 - sum(int(confusion[r, cols[r]]) for r in moved) / n)
    if not _far_lower(raw, matched):
        return None, None
    column_class = [0] * k  # logits column j stands for class column_class[j]
    for r, c in zip(rows, cols):
        column_class[int(c)] = int(r)
    remapped = topk_error(logits[:, torch.tensor(column_class).argsort()], y, 1)
    # the model puts raw output o in logits column was[o] (ImportedModel's class_order)
    was = list(current) if current is not None else list(range(k))
    order = [column_class[was[o]] for o in range(k)]
    changes = [f"output {o} is {classes[order[o]]!r}" for o in range(k) if order[o] != was[o]]
    shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
    return (f"clean error {topk_error(logits, y, 1):.1f}%, {remapped:.1f}% with the outputs matched to other classes: "
            f"the model's class order differs from the data set's ({shown}); pass {f['order'].format(o=','.join(map(str, order)))}"), order


def run_checks(model: ImportedModel, data: Dataset, given: Normalization, *, device: torch.device,
               name: str = "the model", style: str = "cli") -> Findings:
    """All the checks, the model in eval mode (handed back in the mode it came in)."""
    f = FLAGS[style]
    was_training = model.training
    model.eval()
    try:
        notes = check_forward(model, data.x_test, data.num_classes, device, name)
        logits = logits_of(model, data.x_test, device, name=name)
        found = Findings(logits, topk_error(logits, data.y_test, 1), topk_error(logits, data.y_test, 5), notes=notes)
        problem = probabilities_problem(logits, found.top1, f)
        if problem:
            found.problems.append(problem)
        problem, found.alternatives = normalization_problem(model, given, data, logits, device, f)
        if problem:
            found.problems.append(problem)
        problem, found.suspected_order = class_order_problem(logits, data.y_test, data.classes, f, model.class_order)
        if problem:
            found.problems.append(problem)
    finally:
        model.train(was_training)
    for note in notes:
        warnings.warn(note, RobustmixWarning, stacklevel=2)
    return found
