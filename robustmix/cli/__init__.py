"""The command line: `robustmix COMMAND ...`, one module per command, registered in `COMMANDS` below.

The CLI is the only part of robustmix that reads argv or prints. Every user error becomes one
line on stderr and exit code 2, with no traceback.

May import: every other stage (it sits on top).
"""

from __future__ import annotations

import sys

from ..runtime import distributed
from ..runtime.errors import RobustmixError
from . import attack, figures, gate, import_, quickstart, report, study, train
from .common import Parser, one_line_warnings

COMMANDS = {
    "train": train,
    "attack": attack,
    "report": report,
    "quickstart": quickstart,
    "figures": figures,
    "bench": gate,  # the gate (also `robustmix gate`)
    "import": import_,
    "study": study,
}

ALIASES = {"bench": ["gate"]}  # other names a command answers to


def build_parser() -> Parser:
    parser = Parser(
        prog="robustmix",
        description="Does mixup make a classifier more robust to adversarial examples? "
        "Train checkpoints, attack them (FGSM, I-FGSM; white-box and black-box) and report. "
        "On the command line eps is on the 0–255 pixel scale (--eps 4 means 4/255).",
    )
    from ..runtime.version import __version__

    parser.add_argument("--version", action="version", version=f"robustmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        # argparse %-formats a command's help line (not its description): "95%" must reach it as "95%%"
        p = sub.add_parser(name, help=module.HELP.replace("%", "%%"), description=module.HELP, aliases=ALIASES.get(name, []))
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def console_main() -> int:
    """The `robustmix` program (console script and `python -m robustmix`): `main` after setting
    malloc up for long CPU runs (robustmix.runtime.allocator; importing robustmix leaves malloc alone)."""
    from ..runtime.allocator import keep_freed_memory

    keep_freed_memory()
    return main()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        print(f"robustmix: error: no command given: choose one of {', '.join(COMMANDS)} (see robustmix --help)", file=sys.stderr)
        return 2
    try:
        with one_line_warnings(args.command):
            code = int(args.run(args) or 0)
        distributed.finish()  # under torchrun: every rank leaves the process group together
        return code
    except RobustmixError as e:
        print(f"robustmix {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path the user gave cannot be read or written (atomic writes leave old files intact)
        where = f"{e.filename}: " if e.filename else ""
        print(f"robustmix {args.command}: error: {where}{e.strerror or e}: check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robustmix {args.command}: interrupted", file=sys.stderr)
        return 130
