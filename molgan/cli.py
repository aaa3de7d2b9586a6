"""The command line of training, built from ``Config``: one ``--kebab-case`` flag per field,
its help text the field's attribute docstring, its default the chosen preset's value."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import sys

from molgan.config import Config, parse_member_settings
from molgan.presets import DEFAULT_PRESET, PRESETS, make_config
from molgan.removed import REMOVED, removed_message


@functools.cache
def field_docs() -> dict[str, str]:
    """Attribute docstrings of ``Config``, read from its source."""
    tree = ast.parse(inspect.getsource(Config))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
            docs[node.target.id] = str(nxt.value.value)
    return docs


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, except where there is none to show (``None``,
    ``False``): the help text says what an absent value means."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_cli(argv: list[str] | None = None) -> tuple[Config, frozenset[str]]:
    """Build a ``Config`` from ``--preset`` plus ``--kebab-case`` flags, one per field.

    Returns:
        ``(config, explicit)``: ``explicit`` names the fields given on the command line (a
        resumed run takes all others from its checkpoint).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS))
    preset = pre.parse_known_args(argv)[0].preset
    base = make_config(preset)
    parser = argparse.ArgumentParser(
        description=f"Train MolGAN (defaults: the {preset!r} preset; the paper's QM9 settings "
        "are the 'paper' preset)."
    )
    parser.add_argument(
        "--preset",
        default=preset,
        choices=sorted(PRESETS),
        help="starting settings; flags override them",
    )
    docs = field_docs()
    for f in dataclasses.fields(Config):
        if f.metadata.get("cli", True) is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = dict if f.name == "member_settings" else type(f.default)
        text = f"{docs.get(f.name, '')} ({preset} preset: {getattr(base, f.name)!r})"
        text = text.replace("%", "%%")
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        elif kind is dict:  # 'lam=0.9,0.8;seed=0,7'
            parser.add_argument(flag, type=_member_settings, default=None, help=text)
        elif kind is tuple:
            parser.add_argument(flag, type=int, nargs="+", default=None, help=text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=text)
    for arg in argv if argv is not None else sys.argv[1:]:
        name = arg.split("=", 1)[0].removeprefix("--no-").removeprefix("--").replace("-", "_")
        if arg.startswith("--") and name in REMOVED:
            parser.exit(2, f"error: --{arg.split('=', 1)[0][2:]}: {removed_message(name)}\n")
    args = vars(parser.parse_args(argv))
    args.pop("preset")
    overrides = {k: v for k, v in args.items() if v is not None}
    given = pre.parse_known_args(argv)[0].preset != DEFAULT_PRESET or any(
        a == "--preset" or a.startswith("--preset=") for a in (argv or sys.argv[1:])
    )
    try:
        explicit = frozenset(overrides) | ({"preset"} if given else set())
        return make_config(preset, **overrides), explicit
    except ValueError as err:  # one line, not argparse's usage block
        parser.exit(2, f"error: {err}\n")


def _member_settings(text: str) -> dict:
    try:
        return parse_member_settings(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: list[str] | None = None) -> Config:
    """``parse_cli`` without the set of explicit flags."""
    return parse_cli(argv)[0]
