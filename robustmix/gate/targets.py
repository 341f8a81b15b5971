"""The spec's model tables, [[targets]] and [surrogate]: `ModelSpec`, the keys a table may set, and the
TrainConfigs it trains (one per seed, a recipe's values with explicit keys winning, each validated by
TrainConfig itself); and the one-line errors every table of a spec raises (`bad`, `check_keys`).
The spec as a whole (its other tables, canonical form and hash): `robustmix.gate.spec`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..attacks import SETTINGS
from ..runtime.errors import RobustmixError
from ..soundness.verdicts import CONTROLS
from ..training.config import TrainConfig
from ..training.recipes import RECIPES, resolve_config

# TrainConfig keys of the data's form: the gate loads [data] dataset by name, as it is, so a spec
# may not set them (they would be hashed into the baseline and not applied).
DATA_OPTIONS = ("image_size", "data_dir", "download", "cache_dir")
# TrainConfig keys a spec may set in [train] or per model (method/alpha/seed/role are per model).
TRAIN_KEYS = tuple(
    f.name for f in fields(TrainConfig) if f.name not in ("method", "alpha", "seed", "role", "dataset", *DATA_OPTIONS)
)
MODEL_KEYS = ("name", "method", "alpha", "seeds", "checkpoints", "settings", "role") + TRAIN_KEYS
SCALED_KEYS = ("adv_eps", "adv_step_size")  # TrainConfig keys a spec writes on the 0–255 scale, as the CLI does


@dataclass(frozen=True)
class ModelSpec:
    """One named model: trained from `configs` (one per seed) or loaded from `checkpoints`."""

    name: str
    configs: tuple[TrainConfig, ...] = ()
    checkpoints: tuple[str, ...] = ()  # as written in the spec, relative to the spec's folder
    settings: tuple[str, ...] = ()  # a study target scored in only these settings ("white-box"); () = every suite's own
    role: str = "target"  # a study's target, or one of its controls (CONTROLS): attacked like a target, in no claim's arms


def bad(where: str, problem: str, fix: str) -> RobustmixError:
    return RobustmixError(f"{where}: {problem}: {fix}")


def check_keys(where: str, table: dict, allowed) -> None:
    unknown = sorted(set(table) - set(allowed))
    data = [k for k in unknown if k in DATA_OPTIONS]
    if data:
        raise bad(where, f"{data[0]} is a data option the gate does not apply (it loads [data] dataset as it is)", f"remove {data[0]}")
    if unknown:
        raise bad(where, f"unknown key(s) {', '.join(unknown)}", f"use only {', '.join(allowed)}")


def model_table(where: str, raw: dict, train_defaults: dict, dataset: str, role: str) -> ModelSpec:
    """One [[targets]] table or the [surrogate]: checkpoints to load, or configs to train (one per seed)."""
    if not isinstance(raw, dict):
        raise bad(where, "is not a table", f"write it as [{where}] with method = ... and seeds = [...]")
    check_keys(where, raw, MODEL_KEYS)
    raw = dict(raw)
    settings = raw.pop("settings", ())
    if settings != () and (role != "target" or not isinstance(settings, list) or not settings
                           or not all(s in SETTINGS for s in settings) or len(set(settings)) != len(settings)):
        raise bad(where, f"settings {settings!r} is not a non-empty list of distinct settings of a target",
                   f"e.g. settings = [\"white-box\"] (among {', '.join(SETTINGS)}), or leave it out to score the target in every suite's settings")
    name, kind = raw.get("name", role), raw.pop("role", "target")
    if kind != "target" and (role != "target" or kind not in CONTROLS):
        raise bad(where, f"role {kind!r} is not {'a role of a target' if role == 'target' else 'a key of the surrogate'}", 'give a [[targets]] '
                   'table role = "positive-control" (an adversarially trained model) or "negative-control" (a planted masked model), or none')
    if not isinstance(name, str) or not name or set(name) & set("/#*?[] "):
        raise bad(where, f"name {name!r} is not a plain non-empty word", 'give e.g. name = "mixup" (no "/", "#", spaces or glob characters)')
    if "checkpoints" in raw:
        if set(raw) - {"name", "checkpoints"}:
            raise bad(where, "has both checkpoints and training keys", "either load checkpoints or train, not both")
        paths = raw["checkpoints"]
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise bad(where, "checkpoints must be a path or a list of paths", 'e.g. checkpoints = ["runs/mixup-s1"]')
        return ModelSpec(name, checkpoints=tuple(paths), settings=tuple(settings), role=kind)
    return ModelSpec(name, configs=train_configs(where, raw, train_defaults, dataset, role), settings=tuple(settings), role=kind)


def train_configs(where: str, raw: dict, train_defaults: dict, dataset: str, role: str) -> tuple[TrainConfig, ...]:
    """A model table's TrainConfigs, one per seed, each validated by TrainConfig itself."""
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise bad(where, f"seeds must be a non-empty list of integers, got {seeds!r}", "e.g. seeds = [1, 2]")
    if len(set(seeds)) != len(seeds):
        raise bad(where, f"seeds {seeds} repeat a seed", "list each seed once")
    options = {**train_defaults, **{k: v for k, v in raw.items() if k in TRAIN_KEYS}}
    for key in SCALED_KEYS:  # on the 0–255 scale in a spec, as its eps lists are; [0, 1] in TrainConfig
        if key in options:
            if isinstance(options[key], bool) or not isinstance(options[key], (int, float)) or not 0 <= options[key] <= 255:
                raise bad(where, f"{key} must be a number on the 0–255 scale, got {options[key]!r}", f"e.g. {key} = 8 means 8/255")
            options[key] = options[key] / 255
    method = raw.get("method", "erm")
    recipe = options.pop("recipe", "")
    if recipe and recipe not in RECIPES:
        raise bad(where, f"unknown recipe {recipe!r} (auto needs the data and is for the command line)", f"choose one of {', '.join(RECIPES)}")
    try:
        if recipe:  # the recipe's values, explicit keys win: as `robustmix train --recipe NAME` does
            alpha = float(raw["alpha"]) if "alpha" in raw else None
            if "milestones" in options:
                options["milestones"] = tuple(options["milestones"])
            configs = tuple(resolve_config(recipe, dataset=dataset, method=method, alpha=alpha, seed=s, role=role, **options)
                            for s in seeds)
        else:
            alpha = raw.get("alpha", 1.0 if method != "erm" else 0.0)
            configs = tuple(
                TrainConfig(dataset=dataset, method=method, alpha=float(alpha), seed=s, role=role, **options) for s in seeds
            )
    except (TypeError, ValueError) as e:
        raise bad(where, f"bad training option ({e})", f"use keys among {', '.join(TRAIN_KEYS)}") from None
    for c in configs:
        try:
            c.validate()  # the trainer's own checks, with their one-line, flag-neutral messages
        except RobustmixError as e:
            raise bad(where, str(e), "fix the spec") from None
        except TypeError:
            raise bad(where, "a training option has the wrong type", "epochs, batch_size are integers; lr, alpha numbers") from None
    return configs


def targets_table(source: str, targets_raw, train_defaults: dict, dataset: str) -> tuple[ModelSpec, ...]:
    """[[targets]]: at least one, each with its own name."""
    if not isinstance(targets_raw, list) or not targets_raw:
        raise bad(source, "no [[targets]]", 'add at least one [[targets]] table with name, method and seeds')
    targets = tuple(
        model_table(f"{source} [[targets]] #{i + 1}", t, train_defaults, dataset, "target") for i, t in enumerate(targets_raw)
    )
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise bad(source, f"target names {names} repeat", "give every [[targets]] its own name")
    return targets


def surrogate_table(source: str, raw: dict, train_defaults: dict, dataset: str) -> ModelSpec:
    """[surrogate], which black-box needs: exactly one seed or checkpoint."""
    if "surrogate" not in raw:
        raise bad(source, "black-box needs a [surrogate]", 'add [surrogate] (e.g. method = "erm", seeds = [0]) or drop black-box from settings')
    surrogate = model_table(f"{source} [surrogate]", raw["surrogate"], train_defaults, dataset, "surrogate")
    if len(surrogate.configs) + len(surrogate.checkpoints) != 1:
        raise bad(f"{source} [surrogate]", "needs exactly one seed or checkpoint", "e.g. seeds = [0]")
    return surrogate
