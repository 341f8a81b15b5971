"""The first lines of a study report and what they stand on: the headline built from the claims table
(same numbers, same words) with the ceiling finding when it holds and the tally of verdicts; the data
set named without a machine path (name, size, content hash); the torch version of every checkpoint;
and what each arm's training recipe adds to the paper's ERM (the scope of every verdict).
Pure functions of the spec, the study, the claims and the checkpoints' meta.json; `data_identity`
reads the data's files to hash them when they are on this machine.
"""

from __future__ import annotations

from pathlib import Path

from ..data.imagefolder import tree_sha256
from ..data.sources import IMAGEFOLDER
from ..soundness.verdicts import NEGATIVE_CONTROL, POSITIVE_CONTROL, SHOWN_IF_ANY, VERDICTS, ControlReading
from ..training.adversarial import resolve as resolve_adversarial
from ..training.recipes import RECIPES
from .claims import Claim, Study, pooled_error
from .spec import StudySpec
from .tables import fmt, method_labels, p_text, verdict_text

DATA = "$DATA"  # what a report prints for the folder of an imagefolder data set
PAPER_ERM = "paper-cifar"  # the paper's recipe (docs/protocol.md#cifar-recipe): its ERM had none of the extras below


def data_root(spec: StudySpec) -> str | None:
    """The folder of an imagefolder data set as the spec (or --dataset) gives it; None for a named one."""
    d = spec.bench.dataset
    return d[len(IMAGEFOLDER):] if d.startswith(IMAGEFOLDER) else None


def scrub(text: str, spec: StudySpec) -> str:
    """`text` with the data's folder (as given, and resolved) replaced by $DATA: a committed report names
    the data set, never a machine path; the recorded command stays usable (set DATA to the folder)."""
    root = data_root(spec)
    if not root:
        return text
    for spelling in sorted({root.rstrip("/"), str(Path(root).expanduser().resolve())}, key=len, reverse=True):
        if spelling and spelling != ".":
            text = text.replace(spelling, DATA)
    return text


def data_identity(spec: StudySpec, metas: dict[str, dict], num_classes: int) -> str:
    """The data set as a report names it: name, size, classes and, for an image folder on this machine,
    the sha256 of its content (`robustmix.data.imagefolder.tree_sha256`)."""
    data = next(iter(metas.values()), {}).get("data") or {}
    size = (f"{data['train_examples']:,} training / {data['test_examples']:,} test images, "
            if data.get("train_examples") and data.get("test_examples") else "")
    root = data_root(spec)
    if root is None:
        content = f"the built-in data set {spec.bench.dataset!r}"
    elif Path(root).expanduser().is_dir():
        digest, _, _ = tree_sha256(root)
        content = f"content sha256 {digest} (every image's path in the folder and bytes; `robustmix.data.imagefolder.tree_sha256`)"
    else:
        content = "content hash not computed (the folder is not on the machine that wrote this report)"
    where = f"; given to robustmix as `imagefolder:{DATA}`" if root is not None else ""
    return f"{spec.data_label}: {size}{num_classes} classes; {content}{where}"


def torch_versions(metas: dict[str, dict]) -> str:
    """"2.11.0+cu130 (9: erm-s0, …); 2.14.1+cu130 (1: puzzle-mix-half-s0)": the torch each checkpoint was trained with."""
    by: dict[str, list[str]] = {}
    for slot, m in metas.items():
        by.setdefault(m.get("torch_version") or "not recorded", []).append(slot)
    return "; ".join(f"torch {v} ({len(s)}: {', '.join(s)})" for v, s in by.items())


def _extras(config) -> list[str]:
    """What a TrainConfig adds to the paper's ERM recipe (regularisers and training tricks it did not have)."""
    paper = RECIPES[PAPER_ERM]
    out = []
    if config.label_smoothing:
        out.append(f"label smoothing {config.label_smoothing:g}")
    if config.lookahead_after:
        out.append(f"lookahead from epoch {config.lookahead_after}")
    if config.dropout:
        out.append(f"dropout {config.dropout:g}")
    if config.label_noise:
        out.append(f"{config.label_noise:.0%} corrupted labels")
    if config.adversarial:
        out.append(f"adversarial training, {resolve_adversarial(config).label}")
    if config.head_scale != 1:
        out.append(f"head ×{config.head_scale:g} after training (planted gradient masking: a negative control)")
    if config.method_options.get("adv_p"):
        out.append(f"adversarial inputs (adv_p {config.method_options['adv_p']:g})")
    if config.augment not in (paper["augment"], "auto"):
        out.append(f"augmentation {config.augment} (the paper: {paper['augment']})")
    if config.model != paper["model"]:
        out.append(f"network {config.model} (the paper: {paper['model']})")
    if config.epochs != paper["epochs"]:
        out.append(f"{config.epochs} epochs (the paper: {paper['epochs']})")
    if config.optimizer != "sgd" or config.nesterov or config.schedule != paper["schedule"]:
        out.append(f"{config.optimizer}{' (Nesterov)' if config.nesterov else ''}, {config.schedule} schedule, batch {config.batch_size}")
    return out


def recipe_scope(spec: StudySpec) -> list[str]:
    """One line per group of arms with the same extras: what their recipe includes that the paper's ERM did not."""
    arms = [(t.name, t.configs[0]) for t in spec.bench.targets]
    if spec.bench.surrogate is not None:
        arms.append(("surrogate", spec.bench.surrogate.configs[0]))
    groups: dict[tuple, list[str]] = {}
    for name, config in arms:
        groups.setdefault((config.recipe or "no recipe", tuple(_extras(config))), []).append(name)
    return [f"{', '.join(names)} ({recipe}): {'; '.join(extras) if extras else 'nothing beyond the paper’s recipe'}"
            for (recipe, extras), names in groups.items()]


SMOOTHING_NOTE = ("Label smoothing changes the loss surface an attack climbs (a smoothed model's FGSM error is not an ERM "
                  "model's), so where the recipe has it, \"ERM\" here is not the paper's ERM.")


def tally_counts(claims: list[Claim]) -> dict[str, int]:
    """{verdict: number of claim rows}, in VERDICTS order; "not tested" and "not valid" only when some row has them."""
    counts = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    return {v: n for v, n in counts.items() if n or v not in SHOWN_IF_ANY}


def tally(claims: list[Claim]) -> str:
    return ", ".join(f"{n} {v}" for v, n in tally_counts(claims).items())


def claim_sentence(c: Claim) -> str:
    """A claims-table row in words: the same verdict, reason, numbers and p-values as the table."""
    said = f"{c.claim} ({c.part}): {verdict_text(c)}"
    if c.difference is not None:
        said += (f" — difference {fmt(c.difference, c.unit)} {c.unit} [{fmt(c.lo, c.unit)}, {fmt(c.hi, c.unit)}], "
                 f"p = {p_text(c.p_value)}" + (f", Holm-adjusted p = {p_text(c.p_holm)}" if c.p_holm is not None else ""))
    return said + (f"; rests on {c.rests_on}" if c.rests_on else "")


def ceiling_finding(study: Study) -> str | None:
    """"No model is robust under the strong suite", when every checkpoint's white-box worst-case top-1 error is
    within `margin` pp of 100% (the rule's ceiling), with each method's pooled error as the strong table shows it."""
    worst = [r for r in study.strong if r["attack"] == "worst-case" and r["setting"] == "white-box"]
    if not worst:
        return None
    at = study.eps if any(abs(r["eps_255"] - study.eps) < 1e-6 for r in worst) else max(r["eps_255"] for r in worst)
    level = 100 - study.spec.claims.margin
    controls = {s for n in study.controls for s in study.slots[n]}
    per_slot = [r for r in worst if abs(r["eps_255"] - at) < 1e-6 and r["target"] not in controls]
    if not per_slot or any(r["top1_err"] < level for r in per_slot):
        return None
    labels = method_labels(study)
    arms = {labels[n]: study.bits(study.strong, n, "white-box", "worst-case", at) for n in study.slots if n not in study.controls}
    shown = ", ".join(f"{k} {pooled_error(b):.1f}%" for k, b in arms.items() if b is not None)
    aside = " (the controls aside)" if study.controls else ""
    return (f"**Under strong attacks no model{aside} is robust.** White-box worst-case top-1 error at eps {at:g}/255 (strong suite, "
            f"{per_slot[0]['n']:,} test examples): {shown}. Every one of the {len(per_slot)} checkpoints{aside} is within "
            f"{study.spec.claims.margin:g} pp of 100% (the ceiling), so no difference between the methods under strong attacks "
            "is testable here.")


CONTROLS_MISREAD = "**The controls misread: every claim is not valid.**"


def controls_finding(readings: list[ControlReading]) -> str | None:
    """The controls in one paragraph (None without controls): misread first, as the report's first line."""
    if not readings:
        return None
    said = " ".join(r.sentence()[0].upper() + r.sentence()[1:] + "." for r in readings)
    if any(not r.reads for r in readings):
        return f"{CONTROLS_MISREAD} The study's evidence cannot be trusted until they read as their roles say. {said}"
    shown = [what for role, what in ((POSITIVE_CONTROL, "the attacks read robustness where it exists"),
                                     (NEGATIVE_CONTROL, "the checks catch planted gradient masking"))
             if any(r.role == role for r in readings)]
    return f"**The controls read correctly**: {' and '.join(shown)}. {said}"


def headline_blocks(spec: StudySpec, study: Study, claims: list[Claim], readings: list[ControlReading] = ()) -> list[tuple]:
    """The report's first blocks: the controls when one misreads, the ceiling finding (when it holds), the controls
    when they read correctly, the tally, the claims in words."""
    seeds = {}
    for name, s in study.seeds.items():
        if name in study.controls:
            continue
        seeds.setdefault(len(s), []).append(name)
    arms = "; ".join(f"{n} training seed{'s' if n != 1 else ''} for {', '.join(names)}" for n, names in sorted(seeds.items(), reverse=True))
    judged = sum(c.p_holm is not None for c in claims)
    blocks = [("p", f"**The claims C1–C12 on {spec.data_label}** ({arms}): {tally(claims)}. A verdict needs "
                    f"{spec.claims.min_seeds} training seeds per arm; the {judged} row(s) judged share a family-wise 5% level "
                    "(Holm's adjustment). Row by row, as in the claims table below:")]
    ceiling, controls = ceiling_finding(study), controls_finding(list(readings))
    misread = bool(controls) and controls.startswith(CONTROLS_MISREAD)
    for finding in (controls if not misread else None, ceiling, controls if misread else None):
        if finding:
            blocks.insert(0, ("p", finding))
    blocks.append(("list", [claim_sentence(c) for c in claims]))
    return blocks


def headline_text(blocks: list[tuple]) -> str:
    """The headline blocks as plain text (study.json, the command line)."""
    return "\n".join(b[1] if b[0] == "p" else "\n".join(f"- {i}" for i in b[1]) for b in blocks)
