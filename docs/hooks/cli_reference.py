"""MkDocs hook: one reference page per `robustmix` command, generated from the argument parser at
build time (`robustmix.cli.build_parser`), so the pages cannot drift from the code.

Every subcommand registered in the parser gets `reference/cli/<command>.md` and an entry under
"CLI reference" in the navigation; nothing here names a command, so a newly registered one (such
as `study`) appears on the next build. tests/test_docs.py checks that every flag has an entry.
"""

from __future__ import annotations

import argparse
import html
import re

NAV_TITLE = "CLI reference"
FOLDER = "reference/cli"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """name -> subparser, in registration order (a command's aliases, e.g. `gate` for `bench`, share its page)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out: dict[str, argparse.ArgumentParser] = {}
            for name, sub in action.choices.items():
                if all(sub is not seen for seen in out.values()):
                    out[name] = sub
            return out
    return {}


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's arguments as a user sees them (no --help, nothing suppressed)."""
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS]


def anchor(action: argparse.Action) -> str:
    """A stable id for an argument: `opt-eps` for --eps, `arg-spec` for a positional SPEC."""
    if action.option_strings:
        longest = max(action.option_strings, key=len)
        return "opt-" + re.sub(r"[^a-z0-9]+", "-", longest.lstrip("-").lower()).strip("-")
    return "arg-" + re.sub(r"[^a-z0-9]+", "-", str(action.metavar or action.dest).lower()).strip("-")


def signature(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """`-e, --eps EPS` as argparse's own help would print it."""
    formatter = parser._get_formatter()
    return formatter._format_action_invocation(action)


def text(value: str) -> str:
    """Help text as Markdown that renders literally (no emphasis, no tags, no table cells)."""
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", html.escape(" ".join(value.split()), quote=False))


def default_of(action: argparse.Action) -> str | None:
    if action.default in (None, argparse.SUPPRESS) or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return None
    if isinstance(action, argparse._VersionAction):
        return None
    value = action.default
    if isinstance(value, (tuple, list)):
        value = ",".join(str(v) for v in value)
    return str(value)


def help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text with argparse's %(default)s-style substitutions done."""
    if not action.help:
        return ""
    return parser._get_formatter()._expand_help(action)


def command_page(name: str, parser: argparse.ArgumentParser) -> str:
    """The Markdown page of one command."""
    usage = parser.format_usage().strip()
    if usage.startswith("usage: "):  # drop the prefix, and as much indentation from the wrapped lines
        usage = "\n".join(line[len("usage: "):] if line.startswith(" " * 7) else line
                          for line in usage[len("usage: "):].split("\n"))
    has_eps = any("--eps" in a.option_strings for a in parser._actions)
    lines = [
        f"# robustmix {name}",
        "",
        "*Generated from the argument parser at build time (`robustmix.cli.build_parser`).*",
        "",
        text(parser.description or ""),
        "",
        "```text",
        usage,
        "```",
        "",
    ]
    if has_eps:
        lines += ["On the command line `--eps` is on the 0–255 pixel scale (`--eps 4` means 4/255); the "
                  "Python API takes eps in [0, 1] units.", ""]
    positional = [a for a in options(parser) if not a.option_strings]
    optional = [a for a in options(parser) if a.option_strings]
    for title, actions in (("Arguments", positional), ("Options", optional)):
        if not actions:
            continue
        lines += [f"## {title}", ""]
        for action in actions:
            lines.append(f'<a id="{anchor(action)}"></a>`{signature(parser, action)}`')
            lines.append(": " + (text(help_of(parser, action)) or "(no help text)"))
            extras = []
            if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
                extras.append("choices: " + ", ".join(f"`{c}`" for c in action.choices))
            default = default_of(action)
            if default is not None:
                extras.append(f"default: `{default}`")
            if extras:
                lines.append("  " + "; ".join(extras) + ".")
            lines.append("")
    return "\n".join(lines) + "\n"


def index_page(parser: argparse.ArgumentParser) -> str:
    lines = [
        "# CLI reference",
        "",
        "*Generated from the argument parser at build time (`robustmix.cli.build_parser`).*",
        "",
        text(parser.description or ""),
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for name, sub in subcommands(parser).items():
        lines.append(f"| [`robustmix {name}`]({name}.md) | {text(sub.description or '')} |")
    lines += ["", "Every command exits 0 on success and 2 on bad input (one line on stderr, no traceback); "
              "`robustmix bench` exits 1 when the gate finds a regression.", ""]
    return "\n".join(lines)


def pages(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Path under docs/ -> Markdown, for the index and every command."""
    out = {f"{FOLDER}/index.md": index_page(parser)}
    for name, sub in subcommands(parser).items():
        out[f"{FOLDER}/{name}.md"] = command_page(name, sub)
    return out


# ---- the MkDocs hook events ----

def _parser():
    from robustmix.cli import build_parser

    return build_parser()


def on_config(config, **kwargs):
    """Replace the nav entry `CLI reference: reference/cli/index.md` by the index and one page per command."""
    names = list(subcommands(_parser()))
    entry = [{"Overview": f"{FOLDER}/index.md"}] + [{f"robustmix {n}": f"{FOLDER}/{n}.md"} for n in names]

    def walk(items):
        for i, item in enumerate(items or []):
            if isinstance(item, dict):
                for key, value in item.items():
                    if key == NAV_TITLE:
                        item[key] = entry
                    elif isinstance(value, list):
                        walk(value)

    walk(config["nav"])
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for path, content in pages(_parser()).items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files
