"""The evaluation planner: the list of forward/backward passes a request needs, before paying for it.

A request is targets × surrogate × attacks × eps × settings. Per chunk of examples the plan is:

- `gradient` (1 forward + 1 backward over N rows) for every model that crafts examples (each target
  for white-box, the surrogate for black-box), when an attack crafts from it. Its logits are the
  target's clean predictions, and sign(∇x loss) at x gives FGSM at every eps *and* the first
  I-FGSM step at every eps (I-FGSM starts at x, with no random start).
- `craft` (an attack's own passes, from its registry entry's plan step, over k·N rows): e.g. the
  remaining iters − 1 I-FGSM steps, all k eps stacked into one batch with per-example eps and step.
  An attack made from the shared gradient alone (FGSM) has none.
- `clean` (1 forward over N rows) for a target that runs no gradient pass (black-box only).
- the strong attacks (PGD, APGD-CE/DLR, Square) have `craft` passes of their own, every eps stacked;
  for those that stop early (restarts on the examples not yet fooled, Square) the count is the
  most they can cost. With square_on="survivors" Square comes after every gradient attack of its
  (model, setting) and queries only the examples none of them fooled (still "at most"). The soundness checks' PGD probes (`robustmix.evaluation.probes`) are craft and score
  passes with `probe` set.
- `score` (1 forward over k·N rows, no autograd) for every (model scored, adversarial source).
- nested eps (`EvalConfig.nest_eps`, docs/protocol.md#nested-eps): a white-box attack whose registry
  entry nests (PGD, APGD-CE/DLR/T, Square) runs one eps at a time in increasing order, craft then
  score, and at each eps above the smallest crafts only the examples its score at the next smaller
  eps left correctly classified (top-1): the others carry that eps's adversarial image, which lies
  in the larger ball. Those passes are counted at most (every example left); `render_plan` also
  gives the most when the smallest eps fools every example (those passes then skip every example).

Attack names, their plan steps and the settings come from the registry (`robustmix.attacks`).

Costs are counted in passes over one chunk of N examples (a stacked pass over k·N rows counts k),
because that, not the number of model calls, is what a pass costs. `naive_cost` counts the
one-at-a-time loop (a fresh attack and a fresh forward per target × setting × attack × eps) for
comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..attacks import ATTACKS, COMBINED, Budget


@dataclass(frozen=True)
class Pass:
    kind: str  # "gradient" | "craft" | "clean" | "score"
    model: str  # the checkpoint whose forward/backward runs
    source: str = ""  # score: the model whose adversarial examples are scored
    setting: str = ""  # score: one of attacks.SETTINGS
    attack: str = ""  # craft, score: an ATTACKS name
    eps: tuple[float, ...] = ()  # eps values stacked in this pass ([0, 1] units)
    forwards: int = 0  # model calls
    backwards: int = 0
    what: str = ""  # gradient, craft: what the pass computes, in words
    probe: str = ""  # craft, score: the soundness check this pass serves ("unbounded", "converged"), else ""
    eps_free: bool = False  # craft: one run answers every eps stacked (FAB-T): costs one stack's rows, not k
    share: float = 1.0  # the share of the chunk's examples the pass runs on (the checks' probes on a subset)
    nest: bool = False  # craft, score: one eps of a nested attack (its score says which examples the next eps skips)
    after: float | None = None  # nest: the next smaller eps, whose fooled examples this eps does not attack again

    @property
    def stack(self) -> int:
        return max(1, len(self.eps))

    @property
    def rows(self) -> float:
        """Rows per example of the chunk this pass runs over: the stacked eps (1 for an eps-free
        attack) times the share of examples it runs on."""
        return (1 if self.eps_free else self.stack) * self.share

    @property
    def forward_cost(self) -> float:
        """Forward passes over one chunk of examples (rows / N)."""
        return self.forwards * self.rows

    @property
    def backward_cost(self) -> float:
        return self.backwards * self.rows

    def describe(self) -> str:
        eps = ",".join(f"{e * 255:g}" for e in self.eps)
        if self.kind == "gradient":
            return f"{self.model}: clean logits + sign(∇x loss) at x ({self.what})"
        if self.kind == "craft":
            if self.nest:
                left = f"on the examples it left at {self.after * 255:g}/255" if self.after is not None else "nested: every example"
                return f"{self.model}: {self.what}, eps {eps}/255 {left}"
            return f"{self.model}: {self.what}, eps {eps}/255 stacked"
        if self.kind == "clean":
            return f"{self.model}: clean predictions"
        check = f" (check {self.probe})" if self.probe else ""
        return f"{self.model}: score {self.setting} {self.attack} from {self.source}, eps {eps}/255{check}{' nested' if self.nest else ''}"

    def tail(self) -> str:
        """What follows the description on a plan line when the pass runs on a part of the chunk."""
        return f" [{100 * self.share:g}% of the examples]" if self.share < 1 else ""


def eps_groups(eps: Sequence[float], group: int) -> list[tuple[float, ...]]:
    """eps cut into stacks of at most `group` values (all of them in one stack when memory allows)."""
    eps = tuple(eps)
    return [eps[i : i + group] for i in range(0, len(eps), max(1, group))]


def nested(attack: str, setting: str, nest: bool, eps: Sequence[float], probe: str = "") -> bool:
    """Whether (attack, setting) runs nested over eps (EvalConfig.nest_eps): white-box, an attack whose
    registry entry nests, two eps or more, and not the unbounded probe (one eps of its own)."""
    return (bool(nest) and setting == "white-box" and attack in ATTACKS and ATTACKS[attack].nests and len(set(eps)) > 1
            and probe != "unbounded")


def nested_groups(eps: Sequence[float]) -> list[tuple[tuple[float, ...], float | None]]:
    """A nested attack's passes: (one eps, the next smaller eps or None), in increasing order."""
    order = sorted(set(eps))
    return [((e,), prev) for prev, e in zip([None, *order], order)]


def build_plan(
    targets: Sequence[str],
    surrogate: str | None,
    *,
    attacks: Sequence[str],
    eps: Sequence[float],
    iters: int,
    settings: Sequence[str],
    eps_per_pass: int | None = None,
    budget: Budget | None = None,
    gradients: bool = False,
    nest: bool = False,
) -> list[Pass]:
    """The passes for one chunk of examples, in the order they run.

    `attacks` are ATTACKS names (WORST, computed from the others' records, costs no pass);
    `eps_per_pass` caps how many eps are stacked in one pass (None: all); `budget` sets the strong
    attacks' work (default: Budget(iters=iters)); `gradients`: a gradient pass at x for every
    white-box target even when no attack starts from it (the checks' gradients probe); `nest`: the
    attacks that nest run nested over eps, white-box (one eps per pass, in increasing order).
    """
    budget = budget or Budget(iters=iters)
    attacks = [a for a in attacks if a not in COMBINED]
    groups = eps_groups(eps, eps_per_pass or len(eps))
    chosen = [ATTACKS[a] for a in attacks]
    if budget.square_on == "survivors":  # Square attacks what the gradient attacks left: it runs after them
        chosen = sorted(chosen, key=lambda a: a.gradient_free)
    crafters = [(t, "white-box") for t in targets] if "white-box" in settings else []
    if "black-box" in settings and surrogate is not None:
        crafters.append((surrogate, "black-box"))
    uses = ", ".join(a.direction for a in chosen if a.direction)
    # the soundness checks' gradients probe needs the input gradient at x of each white-box target
    probe = {name for name, setting in crafters if gradients and setting == "white-box"}
    gradient = {name for name, _ in crafters} if uses else probe
    plan = [Pass("clean", t, forwards=1) for t in targets if t not in gradient]
    for name, setting in crafters:
        if uses or name in probe:
            plan.append(Pass("gradient", name, forwards=1, backwards=1, what=uses or "for check gradients"))
        scored = [name] if setting == "white-box" else list(targets)
        for attack in chosen:
            step = attack.plan(budget)
            nests = nested(attack.name, setting, nest, eps)
            for group, after in nested_groups(eps) if nests else [(g, None) for g in groups]:
                if step is not None:
                    plan.append(Pass("craft", name, attack=attack.name, eps=group, forwards=step.forwards,
                                     backwards=step.backwards, what=step.what, eps_free=step.eps_free, nest=nests, after=after))
                for t in scored:
                    plan.append(Pass("score", t, source=name, setting=setting, attack=attack.name, eps=group, forwards=1, nest=nests,
                                     after=after))
    return plan


def total_cost(plan: Sequence[Pass]) -> tuple[int, int]:
    """(forward, backward) passes over one chunk of examples: passes per example, at most."""
    return round(sum(p.forward_cost for p in plan)), round(sum(p.backward_cost for p in plan))


def naive_cost(n_targets: int, *, attacks: Sequence[str], n_eps: int, iters: int, settings: Sequence[str],
               budget: Budget | None = None) -> tuple[int, int]:
    """(forward, backward) passes per chunk for the one-at-a-time loop: a clean forward per target,
    and per target × setting × attack × eps a fresh attack (its registry `cost`: FGSM 1 + 1,
    I-FGSM iters + iters) and a scoring forward."""
    budget = budget or Budget(iters=iters)
    attacks = [a for a in attacks if a not in COMBINED]
    f, b = n_targets, 0
    cells = n_targets * len(settings) * n_eps
    for attack in attacks:
        forwards, backwards = ATTACKS[attack].cost(budget)
        f += cells * (forwards + 1)
        b += cells * backwards
    return f, b


def render_plan(plan: Sequence[Pass], *, n_examples: int, chunk: int, naive: tuple[int, int] | None = None) -> str:
    """The plan as text: one line per pass, then the totals over the whole data set."""
    chunks = -(-n_examples // chunk) if n_examples else 0
    lines = [f"plan per chunk of {chunk} examples ({chunks} chunk(s), {n_examples} examples):"]
    w = max((len(p.describe()) for p in plan), default=0)
    for i, p in enumerate(plan, 1):
        rows = round(p.rows * chunk)
        lines.append(f"{i:3d}. {p.describe():<{w}}  {p.forward_cost:4.0f} fwd {p.backward_cost:4.0f} bwd  ({rows} rows/call){p.tail()}")
    f, b = total_cost(plan)
    lines.append(f"total: {f} forward + {b} backward passes per chunk; {f * chunks} + {b * chunks} over all chunks")
    lines.append(f"per example: {f} forward + {b} backward passes at most (a pass over a chunk is one pass per example; "
                 "attacks that stop once an example is fooled, and a cascade's later attacks, cost less on a model that breaks)")
    skippable = [p for p in plan if p.kind == "craft" and p.nest and p.after is not None]
    if skippable:
        sf, sb = total_cost(skippable)
        names = ", ".join(dict.fromkeys(ATTACKS[p.attack].label for p in skippable))
        lines.append(f"nested eps ({names}): the passes 'on the examples it left' run only on those: at most {f - sf} forward + "
                     f"{b - sb} backward per chunk when the smallest eps fools every example, {f} + {b} when it fools none")
    if naive is not None:
        nf, nb = naive
        lines.append(
            f"one attack call per target × setting × attack × eps would need {nf} forward + {nb} backward per chunk "
            f"({(nf + nb) / max(1, f + b):.2f}× as many passes)"
        )
    return "\n".join(lines)
