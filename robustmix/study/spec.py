"""The study spec: a `robustmix bench` spec (`robustmix.gate.spec`, one language) with three
optional sections of its own, each validated here with one-line errors naming the fix:

- [strong]  the strong suite: `suite = "strong"` or `attacks = [...]`, `eps` (0–255 scale),
            `examples` (a stratified, seeded subset of the test set), `seed` (the subset's and the
            attacks' random starts), the budget keys of [attack] (pgd_iters, pgd_restarts,
            apgd_iters, apgd_restarts, square_queries), `square_on` ("all" or "survivors": Square
            only on the examples no gradient attack fooled, white-box), `nest_eps` (true: several eps
            for about the price of one, docs/protocol.md#nested-eps), `settings`, `iters`,
            `batch_size`, `topk`;
- [figures] Figure 2 (`pairs`, `lams` points on [0, 1], `distinct_labels`, `seed`) and the
            calibration bins (`bins`);
- [claims]  `eps` (0–255) at which Table 3 and the claims are read (default 4), `margin` (pp) of the
            "no improvement" claims (C2, C9's PGD part, C11's first part; also the distance from 0%
            or 100% within which a claim is not testable), `broken` (%): the error both models must
            reach for C2, `lam`, the λ at which C6/C7 compare, and `min_seeds`: the training seeds
            every arm of a claim needs for a reproduced / not reproduced verdict (default 3, at
            least 2: one seed has no seed variance); `control_gap` (pp, default 10): how far below the
            ERM target's worst case a positive control's must lie;
- [cluster] the resources of each model's job under `--executor slurm|local` (ClusterSpec: partition,
            account, time_min, gpus, cpus, mem_gb, max_parallel, sbatch = {extra options}, setup =
            [shell lines], retries): where the study runs, never what it computes, so not in `canonical`.

A [[targets]] table may be a control (`role = "positive-control"`: an adversarially trained model that
must read robust; `role = "negative-control"`: a planted masked model, e.g. `head_scale = 10000`, that
the checks must flag; docs/protocol.md#controls): attacked like a target, in no claim's arms. Only a
negative control may set `head_scale`; a positive control needs the strong suite's white-box worst case
and an ERM target to be read against.

A study spec's [data] may also give `name`: the data set as a report names it (e.g. "CIFAR-10,
JPEG-recompressed copy"), so the report need not print the machine path of an imagefolder tree.

`load_study(path, dataset=None)` returns a StudySpec; `dataset` overrides [data] dataset (e.g.
imagefolder:/where/cifar10 is), so a committed spec does not hard-wire a machine's paths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePath

from ..attacks import SUITES, WORST
from ..evaluation.evaluator import EvalConfig
from ..gate.spec import BenchSpec, attack_table, parse_spec, read_spec, read_toml
from ..gate.targets import bad, check_keys
from ..soundness.verdicts import CONTROL_GAP, NEGATIVE_CONTROL, POSITIVE_CONTROL

STRONG_KEYS = ("suite", "attacks", "eps", "examples", "seed", "iters", "settings", "topk", "batch_size",
               "pgd_iters", "pgd_restarts", "apgd_iters", "apgd_restarts", "square_queries", "square_on", "target_classes", "fab_iters",
               "probe_examples", "nest_eps")


@dataclass(frozen=True)
class FiguresSpec:
    pairs: int = 1000
    lams: int = 21
    distinct_labels: bool = True
    seed: int = 0
    bins: int = 10


@dataclass(frozen=True)
class ClaimsSpec:
    eps: float = 4.0  # 0–255 scale
    margin: float = 2.0  # percentage points
    broken: float = 90.0  # % error both models reach for C2
    lam: float = 0.5
    min_seeds: int = 3  # training seeds per arm for a reproduced / not reproduced verdict (>= 2)
    control_gap: float = CONTROL_GAP  # pp a positive control's worst case must lie below the ERM target's


@dataclass(frozen=True)
class ClusterSpec:
    """Each model's job on a cluster (`robustmix study --executor slurm`, docs/guides/cluster.md)."""
    partition: str | None = None
    account: str | None = None
    time_min: int = 240  # per job: a job that reaches it is requeued (submitit checkpointing), resuming
    gpus: int = 0  # per job
    cpus: int | None = None  # per job; also the job's torch threads
    mem_gb: float | None = None  # per job
    max_parallel: int | None = None  # the job array's cap (--array=0-N%cap); None: every job at once
    sbatch: tuple[tuple[str, str | int | bool], ...] = ()  # further sbatch options, e.g. (("qos", "high"),)
    setup: tuple[str, ...] = ()  # shell lines run before each job (module load ..., source .venv/bin/activate)
    retries: int = 2  # rounds of resubmitting the models whose job failed (each resumes from disk)


# sbatch options that robustmix or submitit set themselves (or that have a key of their own above)
OWN_SBATCH = ("partition", "account", "time", "gpus-per-node", "cpus-per-task", "mem", "array", "dependency", "output",
              "error", "job-name", "ntasks-per-node", "nodes", "signal", "open-mode")


@dataclass(frozen=True)
class StudySpec:
    bench: BenchSpec
    strong: EvalConfig | None = None
    strong_examples: int | None = None
    strong_topk: tuple[int, ...] = (1,)
    figures: FiguresSpec = field(default_factory=FiguresSpec)
    claims: ClaimsSpec = field(default_factory=ClaimsSpec)
    source: str = "spec"
    data_name: str = ""  # [data] name: how the report names the data set ("" -> from the data set's spelling)
    cluster: ClusterSpec = field(default_factory=ClusterSpec)

    def canonical(self) -> dict:
        """Everything that determines the study's numbers, JSON-ready."""
        strong = None
        if self.strong is not None:
            ev = self.strong.to_dict()
            ev["eps_255"] = [round(e * 255, 6) for e in ev.pop("eps")]
            strong = {**ev, "examples": self.strong_examples, "topk": list(self.strong_topk)}
        claims = asdict(self.claims)
        if not self.controls:  # a spec without controls (and its canonical form) as before the key
            claims.pop("control_gap")
        return {**self.bench.canonical(), "strong": strong, "figures": asdict(self.figures), "claims": claims}

    @property
    def controls(self) -> dict[str, str]:
        """{name: role} of the [[targets]] that are controls (role "positive-control" or "negative-control")."""
        return {t.name: t.role for t in self.bench.targets if t.role != "target"}

    @property
    def data_label(self) -> str:
        """The data set as a report names it: [data] name, else its spelling without a folder's path
        (an imagefolder tree by its folder's name), so no machine path is printed."""
        if self.data_name:
            return self.data_name
        d = self.bench.dataset
        return f"{PurePath(d.split(':', 1)[1]).name} (an image folder)" if d.startswith("imagefolder:") else d

    def settings_of(self, target: str) -> tuple[str, ...]:
        """The settings a target is limited to ([[targets]] settings = [...]); () = every suite's own."""
        return next((t.settings for t in self.bench.targets if t.name == target), ())

    def with_device(self, device: str) -> "StudySpec":
        """Every model's config and both suites on `device` (not part of what a checkpoint must match)."""
        def models(m):
            return None if m is None else replace(m, configs=tuple(c.with_(device=device) for c in m.configs))

        bench = replace(self.bench, targets=tuple(models(t) for t in self.bench.targets), surrogate=models(self.bench.surrogate),
                        eval=replace(self.bench.eval, device=device))
        return replace(self, bench=bench, strong=replace(self.strong, device=device) if self.strong else None)


def _int(where: str, table: dict, key: str, default: int, low: int = 1) -> int:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise bad(where, f"{key} must be an integer >= {low}, got {v!r}", f"e.g. {key} = {default}")
    return v


def _number(where: str, table: dict, key: str, default: float, low: float, high: float) -> float:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
        raise bad(where, f"{key} must be a number in [{low:g}, {high:g}], got {v!r}", f"e.g. {key} = {default:g}")
    return float(v)


def _strong(source: str, table: dict, device: str, n_paper: int | None) -> tuple[EvalConfig, int | None, tuple[int, ...]]:
    where = f"{source} [strong]"
    check_keys(where, table, STRONG_KEYS)
    table = dict(table)
    if "attacks" not in table:
        table["suite"] = table.get("suite", "strong")
    if "suite" in table and table["suite"] not in SUITES:
        raise bad(where, f"unknown suite {table['suite']!r}", f"choose one of {', '.join(SUITES)}, or list attacks = [...]")
    examples = table.pop("examples", None)
    if examples is not None:
        examples = _int(where, {"examples": examples}, "examples", 1000)
    ev, topk = attack_table(source, table, device, "strong")
    return ev, examples, topk


def _text(where: str, table: dict, key: str) -> str | None:
    v = table.get(key)
    if v is not None and (not isinstance(v, str) or not v.strip()):
        raise bad(where, f"{key} must be a non-empty string, got {v!r}", f'e.g. {key} = "gpu"')
    return v


def _cluster(source: str, table: dict) -> ClusterSpec:
    where = f"{source} [cluster]"
    check_keys(where, table, tuple(ClusterSpec.__dataclass_fields__))
    sbatch = table.get("sbatch", {})
    if not isinstance(sbatch, dict) or not all(isinstance(v, (str, int, bool)) and not isinstance(v, float) for v in sbatch.values()):
        raise bad(where, f"sbatch must be a table of options, got {sbatch!r}", 'e.g. sbatch = { qos = "high", constraint = "a100" }')
    own = sorted(k for k in sbatch if k.replace("_", "-") in OWN_SBATCH)
    if own:
        raise bad(where, f"sbatch sets {', '.join(own)}, which robustmix sets itself",
                   "use the [cluster] keys partition, account, time_min, gpus, cpus, mem_gb, max_parallel instead")
    setup = table.get("setup", [])
    if not isinstance(setup, list) or not all(isinstance(line, str) for line in setup):
        raise bad(where, f"setup must be a list of shell lines, got {setup!r}", 'e.g. setup = ["source .venv/bin/activate"]')
    mem = table.get("mem_gb")
    if mem is not None:
        mem = _number(where, table, "mem_gb", 16, 0.001, math.inf)
    return ClusterSpec(
        partition=_text(where, table, "partition"), account=_text(where, table, "account"),
        time_min=_int(where, table, "time_min", 240), gpus=_int(where, table, "gpus", 0, 0),
        cpus=_int(where, table, "cpus", 1) if "cpus" in table else None, mem_gb=mem,
        max_parallel=_int(where, table, "max_parallel", 8) if "max_parallel" in table else None,
        sbatch=tuple(sorted(sbatch.items())), setup=tuple(setup), retries=_int(where, table, "retries", 2, 0))


def parse_study(text: str, *, base: Path = Path("."), source: str = "spec", dataset: str | None = None) -> StudySpec:
    raw = read_toml(text, source)
    raw.setdefault("data", {})
    if not isinstance(raw["data"], dict):
        raise bad(source, "[data] is not a table", "write it as a [data] section")
    if dataset is not None:
        raw["data"] = {**raw["data"], "dataset": dataset}
    data_name = raw["data"].get("name", "")
    if not isinstance(data_name, str) or "/" in data_name or "\\" in data_name:
        raise bad(f"{source} [data]", f"name must be the data set's name, not a path: got {data_name!r}",
                   'e.g. name = "CIFAR-10, JPEG-recompressed copy"')
    raw["data"] = {k: v for k, v in raw["data"].items() if k != "name"}
    bench = parse_spec(raw, base=base, source=source, study=True)
    for key in ("strong", "figures", "claims", "cluster"):
        if not isinstance(raw.get(key, {}), dict):
            raise bad(source, f"[{key}] is not a table", f"write it as a [{key}] section")
    strong = strong_examples = None
    strong_topk: tuple[int, ...] = (1,)
    if "strong" in raw:
        strong, strong_examples, strong_topk = _strong(source, raw["strong"], bench.eval.device, bench.examples)
    fig = raw.get("figures", {})
    check_keys(f"{source} [figures]", fig, tuple(FiguresSpec.__dataclass_fields__))
    where = f"{source} [figures]"
    distinct = fig.get("distinct_labels", True)
    if not isinstance(distinct, bool):
        raise bad(where, f"distinct_labels must be true or false, got {distinct!r}", "e.g. distinct_labels = true")
    figures = FiguresSpec(_int(where, fig, "pairs", 1000), _int(where, fig, "lams", 21, 2), distinct,
                          _int(where, fig, "seed", 0, 0), _int(where, fig, "bins", 10))
    cl = raw.get("claims", {})
    where = f"{source} [claims]"
    check_keys(where, cl, tuple(ClaimsSpec.__dataclass_fields__))
    claims = ClaimsSpec(_number(where, cl, "eps", 4, 0, 255), _number(where, cl, "margin", 2, 0, 100),
                        _number(where, cl, "broken", 90, 0, 100), _number(where, cl, "lam", 0.5, 0, 1),
                        _int(where, cl, "min_seeds", 3, 2), _number(where, cl, "control_gap", CONTROL_GAP, 0, 100))
    if not any(abs(e * 255 - claims.eps) < 1e-6 for e in bench.eval.eps):
        raise bad(where, f"eps {claims.eps:g} is not among [attack] eps {[round(e * 255, 6) for e in bench.eval.eps]}",
                   "read the claims at an eps the paper suite runs")
    if not bench.targets or any(m.checkpoints for m in (*bench.targets, bench.surrogate) if m is not None):
        raise bad(source, "a study trains its models (checkpoints = [...] is for the gate)", "give method and seeds instead")
    _check_controls(source, bench, strong)
    return StudySpec(bench, strong, strong_examples, strong_topk, figures, claims, source, data_name=data_name,
                     cluster=_cluster(source, raw.get("cluster", {})))


def _check_controls(source: str, bench: BenchSpec, strong: EvalConfig | None) -> None:
    """Only a negative control plants masking (head_scale); a positive control can be read: the strong suite
    has a white-box worst case for it, and the study has an ERM target (not a control) to read it against."""
    for m in (*bench.targets, bench.surrogate):
        if m is not None and m.role != NEGATIVE_CONTROL and any(c.head_scale != 1 for c in m.configs):
            where = f"{source} [[targets]] {m.name}" if m in bench.targets else f"{source} [surrogate]"
            raise bad(where, "sets head_scale, which plants gradient masking", 'set it only on a [[targets]] table with '
                       'role = "negative-control" (and not in [train], which every model shares)')
    for t in bench.targets:
        if t.role != POSITIVE_CONTROL:
            continue
        where = f"{source} [[targets]] {t.name}"
        if strong is None or WORST not in strong.attacks or "white-box" not in strong.settings or "white-box" not in (t.settings or ("white-box",)):
            raise bad(where, "a positive control is read by its white-box worst case under the strong suite, which this "
                       "study does not run", 'add [strong] (suite = "strong", settings = ["white-box"])')
        if not any(u.role == "target" and u.configs and u.configs[0].method == "erm" for u in bench.targets):
            raise bad(where, "a positive control is read against the ERM target, and the study has none",
                       'add a [[targets]] table with method = "erm"')


def load_study(path: str | Path, *, dataset: str | None = None) -> StudySpec:
    """The study spec in the TOML file at `path`; `dataset` overrides its [data] dataset."""
    path = Path(path)
    text = read_spec(path, "pass a TOML file (see benchmarks/study-digits.toml)")
    return parse_study(text, base=path.parent, source=str(path), dataset=dataset)
