"""Argument parsing shared by the subcommands: one-line errors, eps on the 0–255 scale."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from ..runtime.errors import RobustmixError

EPS_HELP = "on the 0–255 pixel scale (4 means 4/255); a comma-separated list sweeps several"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(text: str, lowest: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < lowest:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= {lowest}")
    return v


def positive_int(text: str) -> int:
    return int_at_least(text, 1)


def nonneg_int(text: str) -> int:
    return int_at_least(text, 0)


def finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def nonneg_float(text: str) -> float:
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return v


def positive_float(text: str) -> float:
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return v


TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")


def boolean(text: str) -> bool:
    """A flag's true/false value, strictly: a typo is an error, never a silent False."""
    word = text.strip().lower()
    if word in TRUE or word in FALSE:
        return word in TRUE
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false (also yes/no, 1/0)")


def eps_list(text: str) -> tuple[float, ...]:
    """'4' or '1,2,4,8' on the 0–255 scale -> values in [0, 1] units."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"eps {part!r} is not a number (0–255 scale, e.g. --eps 4)") from None
        if not math.isfinite(v) or v < 0:
            raise argparse.ArgumentTypeError(f"eps {part!r} must be a finite number >= 0 (0–255 scale)")
        if v > 255:
            raise argparse.ArgumentTypeError(f"eps {part!r} is above 255: the CLI takes eps on the 0–255 scale")
        out.append(v / 255.0)
    if not out:
        raise argparse.ArgumentTypeError("no eps given")
    return tuple(dict.fromkeys(out))


def name_list(choices):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)} (comma-separated)")
        return names

    return parse


def writable_path(path) -> None:
    """Fail before hours of work, not after: the folder an output file goes in must be creatable."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise RobustmixError(f"cannot write {path}: {parent} is a file, not a folder; choose another --out")
            return


def bar(total: int, desc: str):
    """A progress bar on stderr (hidden when stderr is not a terminal)."""
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def say(text: str = "") -> None:
    print(text, file=sys.stderr)


@contextlib.contextmanager
def one_line_warnings(command: str):
    """Warnings (e.g. RobustmixWarning) as one line each on stderr, without source lines."""
    old = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"robustmix {command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = old
