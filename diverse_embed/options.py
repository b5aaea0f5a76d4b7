"""Dataclass fields that are also command-line options: declared once, with their help.

`option(default, help, ...)` makes a field whose metadata carries its help and any argparse
keywords; `add_options(parser, Kind)` turns every such field of a dataclass (and of a dataclass
field inside it) into an option, its type and default from the field; `from_options(Kind, args)`
builds the dataclass back from what was parsed. Torch-free, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

Field = dataclasses.Field


def option(default=dataclasses.MISSING, help: str = "", *, factory=None, **argparse_keywords) -> Field:
    """A dataclass field that is also an option. Keywords: any of argparse's (choices, required,
    metavar), `flag` (the option's name, default --field-name), `group` (its section in --help)."""
    metadata = {"help": help, "argparse": argparse_keywords}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def names(text: str) -> list[str]:
    """ "a, b,c" -> ["a", "b", "c"]."""
    return [name.strip() for name in text.split(",") if name.strip()]


def weights(text: str) -> dict[str, float]:
    """ "esc50=2,nemo=0.5" -> {"esc50": 2.0, "nemo": 0.5}."""
    found = {}
    for item in names(text):
        name, _, value = (part.strip() for part in item.partition("="))
        try:
            found[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT, got {item!r}") from None
        if found[name] < 0 or not name:
            raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT with a weight >= 0, got {item!r}")
    return found


# A field's type -> how its option reads a value (bool fields are flags).
PARSERS = {int: int, float: float, str: str, list[str]: names, dict[str, float]: weights}


def options_of(kind, section: str = "options") -> list[tuple[Field, type, str, str]]:
    """(field, type, dest, section) of every option a dataclass declares; a dataclass-typed field's
    own options follow, with dests "field.name", in a section named by its help."""
    hints = typing.get_type_hints(kind)
    found = []
    for f in dataclasses.fields(kind):
        if "help" not in f.metadata:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            inner = options_of(hints[f.name], f.metadata["help"])
            found += [(field, t, f"{f.name}.{dest}", group) for field, t, dest, group in inner]
        else:
            found.append((f, hints[f.name], f.name, f.metadata["argparse"].get("group", section)))
    return found


def add_options(parser: argparse.ArgumentParser, kind) -> None:
    """Every option of `kind` on `parser`, in sections by their `group`."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f, field_type, dest, section in options_of(kind):
        keywords = {k: v for k, v in f.metadata["argparse"].items() if k != "group"}
        flag = keywords.pop("flag", "--" + f.name.replace("_", "-"))
        if section not in groups:
            groups[section] = parser.add_argument_group(section)
        group = groups[section]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        help_text = f.metadata["help"]
        if field_type is bool:
            keywords["action"] = "store_false" if default else "store_true"
        else:
            if isinstance(field_type, types.UnionType) or typing.get_origin(field_type) is typing.Union:
                field_type = next(t for t in typing.get_args(field_type) if t is not type(None))  # X | None -> X
            keywords.setdefault("type", PARSERS[field_type])
            if "choices" not in keywords:
                keywords.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
            if default not in (None, [], {}) and not keywords.get("required"):
                shown = ",".join(default) if isinstance(default, list) else default
                help_text += f" (default {shown})"
        group.add_argument(flag, dest=dest, default=default, help=help_text, **keywords)


def from_options(kind, args: argparse.Namespace, prefix: str = ""):
    """The dataclass `kind` from parsed options (its dests as add_options names them). A value the
    dataclass refuses raises its ValueError."""
    values = vars(args)
    hints = typing.get_type_hints(kind)
    built = {}
    for f in dataclasses.fields(kind):
        if "help" not in f.metadata:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            built[f.name] = from_options(hints[f.name], args, f"{prefix}{f.name}.")
        elif prefix + f.name in values:
            built[f.name] = values[prefix + f.name]
    return kind(**built)
