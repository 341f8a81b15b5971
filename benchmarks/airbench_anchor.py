"""airbench94 (its authors' code, the `airbench` package) vs robustmix's fast-cifar, same data, same machine.

Both train on the SAME tensors: the data set is loaded once through `robustmix.data.load_dataset`
(e.g. `imagefolder:ROOT`, the decode cache), and airbench's `CifarLoader` is handed those uint8
pixels instead of its own CIFAR-10 download. Runs alternate (for each seed: airbench, then robustmix)
in one process, one at a time, so load from other users hits both alike. Each finished run appends
one JSON line to --results; a restarted command skips the runs already there (same model, seed,
epochs, images, precision, recipe), so it can be stopped and continued.

airbench94 as shipped: `airbench==0.1.8` (pip install airbench==0.1.8, not a robustmix dependency),
`lib_airbench94.py` (`make_net94`, `train94`, its hyper-parameters) and `utils.py` (`CifarLoader`,
`train`, `evaluate`). Its source is read from the installed package and run with these textual
changes and nothing else (`PATCHES`; each must match exactly, so another version fails loudly):

1. utils.CifarLoader: the tensors come from the caller (a dict with uint8 N×H×W×C `images`, `labels`,
   `classes`) instead of `torch.load('cifar10/{train,test}.pt', map_location=cuda:0)` (data).
2. utils.CifarLoader: images in float32 instead of `.half()` (dtype: the CPU has no fast float16).
3. utils.train: its test loader is built from our test tensors instead of `CifarLoader('cifar10', ...)` (data).
4. utils.train: `torch.cuda.Event` timers become `time.perf_counter` timers and `torch.cuda.synchronize()`
   is dropped (device: the CPU runs synchronously).
5. lib_airbench94.make_net94: `net.half().cuda()` becomes `net.float()` (device, dtype).

and one hook that changes no computation: `utils.print_training_details` (its per-epoch logging
function, called with the training loop's locals) also records each epoch's numbers for the table.

Two things are our choices, not airbench's: the training images are handed to airbench in a
seeded random order (the seed's `torch.randperm`), because airbench computes its whitening layer from
`images[:5000]` and an ImageFolder tree is sorted by class (CIFAR-10's own files are in random
order); with that order airbench's 5,000 whitening images are exactly those robustmix's trainer
picks for the same seed (`robustmix.training.loop.init_stem`). And `torch.manual_seed(seed)` before
each airbench run (airbench draws initialisation, shuffling and augmentation from the global RNG).
airbench trains once per seed and is scored at tta_level 0 (the model itself) and 2 (mirror +
translate, its published setting); tta_level only changes the final evaluation, so one training
gives both. robustmix's model is scored with airbench's TTA too, for reference only (robustmix
attacks the model itself, without TTA).

Epochs: both default to 10 (equal epochs; airbench ships 9.9, pass --airbench-epochs 9.9).
airbench drops the last partial batch (48 steps of 1,024 per epoch), robustmix keeps it (49 steps,
the last of 848 images). Time: each side's own per-epoch training clock (no evaluation), plus
airbench's whitening set-up; images/s = training images per epoch × epochs / training seconds.

    pip install airbench==0.1.8
    nohup nice -n 5 python benchmarks/airbench_anchor.py --root /work/data/cifar10-jpeg \\
        --results anchor.jsonl > anchor.log 2>&1 &
    python benchmarks/airbench_anchor.py --results anchor.jsonl --table
    python benchmarks/airbench_anchor.py --root ROOT --images 5000 --epochs 1 --seeds 0 --results /tmp/a.jsonl   # a quick check
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from robustmix import train
from robustmix.data import load_dataset, prepare_dataset
from robustmix.runtime.allocator import keep_freed_memory
from robustmix.runtime.devices import processor
from robustmix.training.recipes import resolve_config

AIRBENCH_VERSION = "0.1.8"

# (file, shipped text, text run here, how many times the shipped text occurs): the whole difference.
PATCHES = [
    ("utils.py",
     "        data_path = os.path.join(path, 'train.pt' if train else 'test.pt')\n"
     "        if not os.path.exists(data_path):\n"
     "            dset = torchvision.datasets.CIFAR10(path, download=True, train=train)\n"
     "            images = torch.tensor(dset.data)\n"
     "            labels = torch.tensor(dset.targets)\n"
     "            torch.save({'images': images, 'labels': labels, 'classes': dset.classes}, data_path)\n"
     "        data = torch.load(data_path, map_location=torch.device(gpu))\n",
     "        data = path  # [anchor] the caller's tensors, on the CPU\n", 1),
    ("utils.py", "self.images = (self.images.half() / 255)", "self.images = (self.images.float() / 255)", 1),
    ("utils.py", "test_loader = CifarLoader('cifar10', train=False, batch_size=2000)",
     "test_loader = CifarLoader(ANCHOR_TEST, train=False, batch_size=2000)", 1),
    ("utils.py", "torch.cuda.Event(enable_timing=True)", "CpuEvent()", 2),
    ("utils.py", "torch.cuda.synchronize()", "None", 3),
    ("lib_airbench94.py", "net = net.half().cuda()", "net = net.float()", 1),
]


class CpuEvent:
    """torch.cuda.Event's timing interface on the CPU's clock (the CPU runs synchronously). Each
    interval airbench measures is also kept, with the process's CPU seconds, in `intervals`."""

    intervals: list[tuple[float, float]] = []  # (wall s, process CPU s) per elapsed_time call

    def record(self) -> None:
        self.t, self.cpu = time.perf_counter(), time.process_time()

    def elapsed_time(self, end: "CpuEvent") -> float:
        CpuEvent.intervals.append((end.t - self.t, end.cpu - self.cpu))
        return 1e3 * (end.t - self.t)  # milliseconds, as CUDA events


@contextlib.contextmanager
def cpu_seconds_per_epoch(out: list[float]):
    """The process CPU seconds of each robustmix training epoch (run_epoch minus its test evaluation),
    appended to `out`: measurement only, the loop's functions are wrapped, not changed."""
    loop = importlib.import_module("robustmix.training.loop")
    run_epoch, predict = loop.run_epoch, loop.predict_logits
    evaluating = [0.0]

    def timed_predict(*args, **kwargs):
        t0 = time.process_time()
        try:
            return predict(*args, **kwargs)
        finally:
            evaluating[0] += time.process_time() - t0

    def timed_epoch(*args, **kwargs):
        evaluating[0], t0 = 0.0, time.process_time()
        row = run_epoch(*args, **kwargs)
        out.append(time.process_time() - t0 - evaluating[0])
        return row

    loop.run_epoch, loop.predict_logits = timed_epoch, timed_predict
    try:
        yield out
    finally:
        loop.run_epoch, loop.predict_logits = run_epoch, predict


def airbench_on_cpu() -> tuple[types.ModuleType, types.ModuleType]:
    """(utils, lib_airbench94) of the installed airbench package with PATCHES applied."""
    try:
        version = importlib.metadata.version("airbench")
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"airbench_anchor: airbench is not installed: pip install airbench=={AIRBENCH_VERSION}")
    if version != AIRBENCH_VERSION:
        sys.exit(f"airbench_anchor: airbench {version} installed, the patches are for {AIRBENCH_VERSION}: pip install airbench=={AIRBENCH_VERSION}")
    folder = Path(importlib.util.find_spec("airbench").submodule_search_locations[0])
    package = types.ModuleType("airbench_cpu")
    package.__path__ = []
    sys.modules["airbench_cpu"] = package
    modules = {}
    for name in ("utils", "lib_airbench94"):
        source = (folder / f"{name}.py").read_text()
        for file, old, new, count in PATCHES:
            if file == f"{name}.py":
                if source.count(old) != count:
                    sys.exit(f"airbench_anchor: {file} of airbench {version} does not contain {old!r} {count}× as 0.1.8 does")
                source = source.replace(old, new)
        module = types.ModuleType(f"airbench_cpu.{name}")
        module.__package__ = "airbench_cpu"
        module.CpuEvent = CpuEvent
        sys.modules[module.__name__] = module
        exec(compile(source, f"airbench/{name}.py (patched)", "exec"), module.__dict__)
        modules[name] = module
    return modules["utils"], modules["lib_airbench94"]


def as_airbench(x: torch.Tensor, y: torch.Tensor, classes) -> dict:
    """robustmix's uint8 N×C×H×W pixels as the dict airbench's CifarLoader reads (N×H×W×C)."""
    return {"images": x.permute(0, 2, 3, 1).contiguous(), "labels": y.clone(), "classes": list(classes)}


def run_airbench(data, seed: int, epochs: float) -> dict:
    utils, lib = airbench_on_cpu()
    order = torch.randperm(data.y_train.numel(), generator=torch.Generator().manual_seed(seed))
    utils.ANCHOR_TEST = as_airbench(data.x_test, data.y_test, data.classes)
    loader = utils.CifarLoader(as_airbench(data.x_train[order], data.y_train[order], data.classes), train=True,
                               batch_size=lib.hyp["opt"]["batch_size"], aug=lib.hyp["aug"], altflip=True)
    log: list[dict] = []
    shipped = utils.print_training_details

    def record(variables: dict, is_final_entry: bool) -> None:  # airbench's logging, and a copy of its numbers
        log.append({k: variables.get(k) for k in ("epoch", "train_loss", "train_acc", "val_acc", "tta_val_acc", "total_time_seconds")})
        shipped(variables, is_final_entry)

    utils.print_training_details = record
    CpuEvent.intervals.clear()
    torch.manual_seed(seed)
    model = lib.train94(loader, epochs=epochs, tta_level=2, run=seed)
    epochs_log = [r for r in log if isinstance(r["epoch"], int)]
    intervals = CpuEvent.intervals[1:1 + len(epochs_log)]  # [whitening set-up, epochs..., final TTA evaluation]
    test = utils.CifarLoader(utils.ANCHOR_TEST, train=False, batch_size=2000)
    t0 = time.perf_counter()
    tta = {level: 100 * utils.evaluate(model, test, tta_level=level) for level in (0, 1, 2)}
    train_seconds = epochs_log[-1]["total_time_seconds"]  # whitening set-up + training epochs, airbench's clock
    steps = -(-int(len(loader) * epochs * 1000) // 1000)  # ceil(len(loader) × epochs), as airbench
    return {"test_acc": tta[0], "test_acc_tta1": tta[1], "test_acc_tta2": tta[2],
            "airbench_tta2_printed": 100 * log[-1]["tta_val_acc"], "tta_seconds": round(time.perf_counter() - t0, 2),
            "train_seconds": round(train_seconds, 2), "steps": steps, "images_seen": steps * loader.batch_size,
            "epoch_test_acc": [round(100 * r["val_acc"], 2) for r in epochs_log],
            "epoch_seconds": [round(wall, 2) for wall, _ in intervals],
            "epoch_cpu_seconds": [round(cpu, 2) for _, cpu in intervals],
            "setup_seconds": round(CpuEvent.intervals[0][0], 2),
            "precision": "float32 (airbench's float16 → float32 on the CPU)", "channels_last": True}


def run_robustmix(data, dataset: str, seed: int, epochs: int, recipe: str, amp: str, channels_last: str) -> dict:
    cfg = resolve_config(recipe, dataset=dataset, augment="altflip-translate", seed=seed, epochs=epochs, device="cpu",
                         amp=amp, channels_last={"auto": "auto", "on": True, "off": False}[channels_last])
    with cpu_seconds_per_epoch([]) as cpu:
        model, meta = train(cfg, data=data)
    utils, _ = airbench_on_cpu()
    test = utils.CifarLoader(as_airbench(data.x_test, data.y_test, data.classes), train=False, batch_size=2000)
    # airbench's TTA normalises with CIFAR-10's constants in its loader; robustmix's model normalises
    # itself, so it gets the pixels: undo the loader's Normalize for it.
    test.normalize = lambda x: x
    t0 = time.perf_counter()
    tta = {level: 100 * utils.evaluate(model, test, tta_level=level) for level in (0, 1, 2)}
    history = meta["history"]
    n = data.y_train.numel()
    return {"test_acc": round(100 - meta["clean_top1_err"], 2), "test_acc_tta1": tta[1], "test_acc_tta2": tta[2],
            "test_acc_tta0_check": tta[0], "tta_seconds": round(time.perf_counter() - t0, 2),
            "train_seconds": round(sum(r["seconds"] for r in history), 2), "steps": len(history) * -(-n // cfg.batch_size),
            "images_seen": n * len(history), "epoch_test_acc": [round(100 - r["test_err"], 2) for r in history],
            "epoch_seconds": [r["seconds"] for r in history], "epoch_cpu_seconds": [round(c, 2) for c in cpu],
            "precision": "bfloat16 autocast" if meta.get("amp") == "bf16" else "float32",
            "channels_last": meta.get("channels_last"), "cpu_kernels": meta.get("cpu_kernels"),
            "config": {k: v for k, v in cfg.to_dict().items() if k not in ("dataset", "data_dir", "cache_dir")}}


def key(row: dict) -> tuple:
    return (row["model"], row["seed"], row["epochs"], row["train_images"], row["test_images"], row.get("variant", ""))


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_row(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:  # one line per finished run: a crash loses at most the run in progress
        f.write(json.dumps(row) + "\n")


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def epoch_medians(rows: list[dict]) -> tuple[float, float, float]:
    """(wall s, CPU s, images) per training epoch: medians over every epoch of every seed, so an
    epoch slowed by other users' work moves them little."""
    wall = statistics.median(s for r in rows for s in r["epoch_seconds"])
    cpu = statistics.median(s for r in rows for s in r.get("epoch_cpu_seconds") or [float("nan")])
    return wall, cpu, statistics.mean(r["images_seen"] / r["epochs"] for r in rows)


def table(rows: list[dict]) -> str:
    """Markdown: per (model, variant, epochs, images) the mean ± sample sd over seeds of the test
    accuracy, and the median epoch's time against airbench94's at the same epochs and images."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r.get("variant", ""), r["epochs"], r["train_images"], r["test_images"]), []).append(r)
    anchor = {k[2:]: epoch_medians(v) for k, v in groups.items() if k[0] == "airbench94"}
    out = ["| model | precision | epochs | seeds | test accuracy, no TTA (%) | with airbench's TTA, level 2 (%) | "
           "s / epoch (wall) | CPU s / epoch | images/s | time per epoch vs airbench94 (wall, CPU) | processor |",
           "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for k, v in sorted(groups.items(), key=lambda kv: (kv[0][3:], kv[0][2], kv[0][0] != "airbench94", kv[0][1])):
        wall, cpu, images = epoch_medians(v)
        a = anchor.get(k[2:]) or next((m for (e, *rest), m in anchor.items() if tuple(rest) == k[3:]), None)
        ratio = f"{wall / a[0]:.2f}×, {cpu / a[1]:.2f}×" if a else "–"
        name = k[0] + (f" ({k[1]})" if k[1] else "")
        out.append(f"| {name} | {v[0]['precision']} | {k[2]} | {','.join(str(r['seed']) for r in v)} | "
                   f"{mean_sd([r['test_acc'] for r in v])} | {mean_sd([r['test_acc_tta2'] for r in v])} | {wall:.0f} | {cpu:.0f} | "
                   f"{images / wall:.0f} | {ratio} | {v[0]['processor']} |")
    return "\n".join(out)


def curves(rows: list[dict]) -> str:
    """Markdown: test accuracy (no TTA) after each epoch, mean over the seeds, one column per group."""
    groups: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["model"] != "airbench94"):
        name = f"{r['model']}{f' ({v})' if (v := r.get('variant')) else ''}, {r['epochs']} epochs, {r['train_images']:,} images"
        groups.setdefault(name, []).append(r)
    longest = max(len(r["epoch_test_acc"]) for r in rows)
    out = ["| epoch | " + " | ".join(f"{k} (seeds {','.join(str(r['seed']) for r in v)})" for k, v in groups.items()) + " |",
           "|---:|" + "---:|" * len(groups)]
    for e in range(longest):
        cells = [f"{statistics.mean(r['epoch_test_acc'][e] for r in v):.2f}" if all(len(r["epoch_test_acc"]) > e for r in v) else "–"
                 for v in groups.values()]
        out.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="", help="ImageFolder root (train/, test/) both train on")
    p.add_argument("--results", required=True, help="JSON lines file: one row per finished run (appended; finished runs are skipped)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--models", default="airbench94,robustmix", help="comma-separated, run in this order per seed")
    p.add_argument("--epochs", type=int, default=10, help="robustmix's epochs (and airbench's unless --airbench-epochs)")
    p.add_argument("--airbench-epochs", type=float, default=0, help="airbench's epochs (0: --epochs; airbench ships 9.9)")
    p.add_argument("--images", type=int, default=0, help="training images (a stratified subset, seed 0; 0: all)")
    p.add_argument("--test-images", type=int, default=0, help="test images (a stratified subset, seed 0; 0: all)")
    p.add_argument("--recipe", default="fast-cifar", help="robustmix's recipe")
    p.add_argument("--amp", default="none", choices=("none", "bf16", "auto"), help="robustmix's precision")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"), help="robustmix's memory layout")
    p.add_argument("--variant", default="", help="a label for robustmix rows that differ from the defaults (kept apart in the table)")
    p.add_argument("--data-name", default="JPEG-recompressed CIFAR-10 copy", help="what the rows call the data (no machine paths)")
    p.add_argument("--table", action="store_true", help="print the table of --results and stop")
    a = p.parse_args()
    path = Path(a.results)
    if a.table:
        print(table(read_rows(path)) + "\n\nTest accuracy (%, no TTA) after each epoch, mean over seeds:\n\n" + curves(read_rows(path)))
        return
    if not a.root:
        p.error("give --root ROOT (an ImageFolder tree), or --table")
    kept = keep_freed_memory()  # as the robustmix program does; airbench runs in the same process, so it gets it too
    dataset = f"imagefolder:{a.root}"
    data, info = prepare_dataset(load_dataset(dataset), train_subset=a.images, test_subset=a.test_images, seed=0)
    done = {key(r) for r in read_rows(path)}
    for seed in [int(s) for s in a.seeds.split(",")]:
        for model in a.models.split(","):
            epochs = (a.airbench_epochs or a.epochs) if model == "airbench94" else a.epochs
            row = {"model": model, "seed": seed, "epochs": epochs, "train_images": info["train_examples"],
                   "test_images": info["test_examples"], "variant": a.variant if model == "robustmix" else ""}
            if key(row) in done:
                print(f"skipping {model} seed {seed}: already in {path}", flush=True)
                continue
            load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
            print(f"== {model}, seed {seed}, {epochs} epochs, {row['train_images']} training images ({load})", flush=True)
            if model == "airbench94":
                result = run_airbench(data, seed, epochs)
            elif model == "robustmix":
                result = run_robustmix(data, dataset, seed, a.epochs, a.recipe, a.amp, a.channels_last)
            else:
                p.error(f"unknown model {model!r}: airbench94 or robustmix")
            row.update(result, recipe=a.recipe if model == "robustmix" else f"airbench94 (airbench {AIRBENCH_VERSION})",
                       processor=processor(), torch=torch.__version__, threads=torch.get_num_threads(),
                       malloc="kept" if kept else "system", data=a.data_name,
                       load_before=load, load_after=subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
            append_row(path, row)
            print(f"-> test acc {row['test_acc']:.2f} % (TTA 2: {row['test_acc_tta2']:.2f} %), "
                  f"{row['train_seconds']:.0f} s training (median epoch {statistics.median(row['epoch_seconds']):.0f} s)", flush=True)
    print(table(read_rows(path)))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
