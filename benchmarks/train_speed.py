"""Epoch time of robustmix's trainer vs a bare loop over pre-made batches and vs a torchvision DataLoader.

Same model, optimiser, loss, batch size and training images, in one process (the fast-cifar recipe
unless --recipe says otherwise); the loops are interleaved epoch by epoch, so CPU contention from
other users hits all of them alike, and the medians over the epochs give the ratios:

- trainer: `robustmix.training.loop.run_epoch` as `robustmix train` runs it (seeded shuffling, whole-batch
  augmentation on uint8, float conversion, memory layout, autocast, label smoothing, loss, optimiser
  step, lr schedule, lookahead, progress callback), timed by the trainer itself (its `seconds`,
  without the epoch-end test evaluation). One trainer loop per --trainer variant (amp:layout), so
  float32 vs bf16 and channels_last vs NCHW are compared side by side in one run.
- bare: forward + backward + optimiser step over batches augmented, converted and laid out before
  the clock starts: the floor for this model. Target: trainer speed ≥ 0.9 × bare speed.
- DataLoader: ImageFolder decoding each JPEG with PIL + per-image RandomCrop(pad 2, reflect),
  RandomHorizontalFlip, ToTensor (the usual torchvision loop), same model and optimiser.
- With --adversarial KIND (pgd, fgsm-rs, trades): the trainer variants train adversarially and the
  floor is (K + 1) × the bare loop's epoch (K crafting steps + the training step; IAT and TRADES count
  their second half): target trainer speed ≥ 0.9 × that floor. Crafting takes the input gradient alone,
  so a crafting pass costs less than a training step and the ratio can exceed 1.

Each loop's epochs are timed by the wall clock and by the process's CPU seconds; on a machine
shared with other work the CPU seconds move less with the others' load than the wall clock does.

    PYTHONPATH=$PWD python benchmarks/train_speed.py --root /work/data/cifar10-jpeg --images 4096 --epochs 3
    PYTHONPATH=$PWD python benchmarks/train_speed.py --dataset digits --recipe small-cnn --images 0 --test-images 0 \\
        --epochs 30 --trainer none:nchw,bf16:nchw --no-loader      # float32 vs bf16: speed and accuracy
    PYTHONPATH=$PWD python benchmarks/train_speed.py --root /work/data/cifar10-jpeg --images 1024 --epochs 2 \\
        --trainer none:cl,none:nchw,bf16:cl --no-loader
    PYTHONPATH=$PWD python benchmarks/train_speed.py --root /work/data/cifar10-jpeg --recipe fast-cifar-adv --images 2048 \\
        --epochs 3 --adversarial pgd --adv-steps 10 --trainer none:cl,bf16:cl --no-loader     # PGD-AT vs its floor
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from robustmix.data import augment_batch, load_dataset, pixels, shuffled_batches
from robustmix.runtime.allocator import keep_freed_memory
from robustmix.runtime.devices import processor
from robustmix.training.methods import get_method, soft_cross_entropy
from robustmix.training.optim import loss_scale, smooth_labels
from robustmix.training.precision import autocast, to_layout
from robustmix.training import adversarial
from robustmix.training.build import augment_of, build_data, build_network, build_optimiser
from robustmix.training.recipes import resolve_config

# The training loop module (robustmix.training.loop), not the function robustmix.train it defines.
trainer = importlib.import_module("robustmix.training.loop")


def build(cfg, data, amp: str, channels_last: bool) -> trainer.Trainer:
    """A Trainer made by the trainer's own steps, with amp and the layout forced to the variant's."""
    device = torch.device("cpu")
    world = trainer.distributed.World(rank=0, size=1, local_rank=0)
    model, net, _ = build_network(cfg, data, world, device, channels_last)
    opt, sched, steps = build_optimiser(cfg, model, data.x_train.shape[0])
    return trainer.Trainer(cfg, world, device, data, get_method(cfg.method), augment_of(cfg), model, net, opt,
                           sched, torch.Generator().manual_seed(cfg.seed), steps, amp, channels_last,
                           trainer.Lookahead() if cfg.lookahead_after else None, adversarial.resolve(cfg))


def progress(s: dict) -> None:
    """What the CLI's progress bar does with each step's values."""
    f"{s['loss']:.3f} {s['acc']:.1f} {s['images_per_second']:.0f}"


def step(t: trainer.Trainer, x: torch.Tensor, y_soft: torch.Tensor) -> None:
    with autocast(t.device, t.amp):
        logits = t.model(x)
    loss = soft_cross_entropy(logits.float(), y_soft) * loss_scale(t.config.optimizer, x.shape[0])
    t.opt.zero_grad(set_to_none=True)
    loss.backward()
    t.opt.step()


def premade(t: trainer.Trainer, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of batches exactly as the trainer makes them (augmented, float, laid out, smoothed targets)."""
    gen, out = torch.Generator().manual_seed(1000 + epoch), []
    for idx in shuffled_batches(t.data.x_train.shape[0], t.config.batch_size, gen):
        x = augment_batch(t.augment, t.data.x_train[idx], gen, idx=idx, epoch=epoch, seed=0)
        y = smooth_labels(F.one_hot(t.data.y_train[idx], t.data.num_classes).float(), t.config.label_smoothing)
        out.append((to_layout(pixels(x), t.channels_last), y))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="", help="ImageFolder root with train/ and test/")
    p.add_argument("--dataset", default="", help="a built-in data set instead of --root (e.g. digits; needs --no-loader)")
    p.add_argument("--recipe", default="fast-cifar")
    p.add_argument("--width", type=int, default=0, help="model width (0: the recipe's)")
    p.add_argument("--images", type=int, default=4096, help="training images per epoch (stratified subset; 0: all)")
    p.add_argument("--test-images", type=int, default=100,
                   help="test images (stratified; 0: all) behind each trainer variant's test error per epoch")
    p.add_argument("--batch", type=int, default=0, help="batch size (0: the recipe's)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--trainer", default="none:cl", help="trainer variants amp:layout, comma-separated (amp none|bf16, layout cl|nchw)")
    p.add_argument("--no-loader", action="store_true", help="skip the DataLoader loop")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: the 2 cores train the model)")
    p.add_argument("--adversarial", default="", help="adversarial training in the trainer variants: pgd, fgsm-rs, trades (default none)")
    p.add_argument("--adv-steps", type=int, default=0, help="crafting steps (0: the kind's default)")
    p.add_argument("--adv-eps", type=float, default=8, help="adversarial radius on the 0–255 scale (default 8)")
    p.add_argument("--malloc", choices=("kept", "system"), default="kept",
                   help="kept: malloc set up as the robustmix program does (robustmix.runtime.allocator); system: glibc's defaults")
    a = p.parse_args()
    kept = a.malloc == "kept" and keep_freed_memory()
    if a.threads:
        torch.set_num_threads(a.threads)

    uptime0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    if bool(a.root) == bool(a.dataset) or (a.dataset and not a.no_loader):
        p.error("give --root ROOT, or --dataset NAME with --no-loader")
    cfg = resolve_config(a.recipe, dataset=a.dataset or f"imagefolder:{a.root}", train_subset=a.images, test_subset=a.test_images,
                         width=a.width or None, batch_size=a.batch or None, epochs=a.epochs, seed=0, device="cpu",
                         adversarial=a.adversarial or ("" if a.recipe != "fast-cifar-adv" else None),
                         adv_eps=a.adv_eps / 255 if a.adversarial else None, adv_steps=a.adv_steps or None, adv_guard="off")
    data, _ = build_data(cfg, load_dataset(cfg.dataset), torch.device("cpu"))
    variants = [(v.split(":")[0], v.split(":")[1] == "cl") for v in a.trainer.split(",")]
    runs: dict[str, tuple] = {}
    for amp, cl in variants:
        runs[f"trainer, amp {amp}, {'channels_last' if cl else 'NCHW'}"] = ("trainer", build(cfg, data, amp, cl))
    first = build(cfg, data, *variants[0])
    runs[f"bare loop over pre-made batches, amp {variants[0][0]}"] = ("bare", first)
    if not a.no_loader:
        import torchvision.transforms as T
        from torchvision.datasets import ImageFolder

        from robustmix.data import stratified_subset

        tf = T.Compose([T.RandomCrop(32, padding=2, padding_mode="reflect"), T.RandomHorizontalFlip(), T.ToTensor()])
        folder = ImageFolder(f"{a.root}/train", transform=tf)
        idx = stratified_subset(torch.tensor(folder.targets), a.images, seed=0)
        loader = DataLoader(Subset(folder, idx.tolist()), batch_size=cfg.batch_size, shuffle=True, num_workers=a.workers,
                            generator=torch.Generator().manual_seed(0))
        runs["DataLoader + per-image transforms"] = ("loader", (build(cfg, data, *variants[0]), loader))
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}  # process CPU seconds: other users' load moves them little
    errors: dict[str, list[float]] = {name: [] for name, (kind, _) in runs.items() if kind == "trainer"}
    for epoch in range(a.epochs):
        batches = premade(first, epoch)  # made before the clock starts
        for name, (kind, obj) in runs.items():
            c0 = time.process_time()
            if kind == "trainer":
                row = trainer.run_epoch(obj, epoch, progress)
                cpu[name].append(time.process_time() - c0)  # includes the --test-images evaluation
                times[name].append(row["seconds"])
                errors[name].append(row["test_err"])
                continue
            t0 = time.perf_counter()
            if kind == "bare":
                obj.model.train()
                for x, y in batches:
                    step(obj, x, y)
            else:
                t, loader = obj
                t.model.train()
                for xb, yb in loader:
                    y = smooth_labels(F.one_hot(yb, 10).float(), cfg.label_smoothing)
                    step(t, to_layout(xb, t.channels_last), y)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    uptime1 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    images = data.x_train.shape[0]
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = next(iter(med))
    bare = next(k for k in med if k.startswith("bare"))
    print(f"{processor()}, torch {torch.__version__}, {torch.get_num_threads()} threads; recipe {a.recipe}, {cfg.model} "
          f"width {cfg.width or 'default'}, batch {cfg.batch_size}, {images} training images per epoch, "
          f"{a.epochs} interleaved epochs each, DataLoader workers {a.workers}, "
          f"malloc {'kept (as the robustmix program)' if kept else 'glibc defaults'}\n")
    setting = adversarial.resolve(cfg)
    passes = adversarial.passes(setting, 1)  # K + 1 (or the clean 1)
    floor = f" | speed vs the {passes}-pass floor" if setting else ""
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"| loop | epoch seconds (each) | median s | images/s | speed vs {ref} | speed vs bare loop{floor} | "
          f"CPU s per epoch (median) | CPU speed vs {ref} |\n|---|---|---|---|---|---|---|---|" + ("---|" if setting else ""))
    for k, v in times.items():
        print(f"| {k} | {', '.join(f'{s:.1f}' for s in v)} | {med[k]:.1f} | {images / med[k]:.0f} | "
              f"{med[ref] / med[k]:.2f} | {med[bare] / med[k]:.2f} |" + (f" {passes * med[bare] / med[k]:.2f} |" if setting else "")
              + f" {cmed[k]:.1f} | {cmed[ref] / cmed[k]:.2f} |")
    if setting:
        print(f"\nAdversarial training: {setting.label}; the floor is {passes} × the bare loop's clean epoch.")
    print(f"\nTest error (top-1, %) after each epoch, on {data.x_test.shape[0]} test images:\n")
    print("| trainer | " + " | ".join(f"epoch {e + 1}" for e in range(a.epochs)) + " |\n|---|" + "---|" * a.epochs)
    for k, v in errors.items():
        print(f"| {k} | " + " | ".join(f"{e:.2f}" for e in v) + " |")
    print(f"\nuptime before: {uptime0}\nuptime after:  {uptime1}")


if __name__ == "__main__":
    main()
