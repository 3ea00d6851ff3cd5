"""The README's table of settings, generated from their declarations in `common/settings.py`.

`python -m scripts.settings_table` prints it; `--write` puts it in README.md, between its markers.
`tests/test_settings.py` fails while the README's table is not this one.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import tempfile
import typing
from pathlib import Path

from annotated_types import Ge, Le
from pydantic.fields import FieldInfo

from common.settings import VARIABLES, Settings
from scripts.stack import ROOT, Ports, Stack

README = ROOT / "README.md"
BEGIN = "<!-- settings: python -m scripts.settings_table --write (from common/settings.py) -->"
END = "<!-- end of settings -->"


def table() -> str:
    """One row per setting, in the order of their declarations."""
    local = _local_stack()
    rows = ["| setting | meaning | default | `make run` |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"the setting {name} has no meaning (its description)")
        variables = VARIABLES[name]
        rows.append(f"| {_names(variables)} | {field.description} | {_default(field)} | {_local(variables, local)} |")
    return "\n".join(rows) + "\n"


def _names(variables: tuple[str, ...]) -> str:
    first, *others = variables
    return f"`{first}`" + "".join(f" (or `{other}`)" for other in others)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default
    text = f"`{_shown(value)}`" if value or isinstance(value, int | float) else "none"
    bounds = {type(item): item for item in field.metadata}
    if Ge in bounds and Le in bounds:
        text += f", from {_shown(bounds[Ge].ge)} to {_shown(bounds[Le].le)}"
    if typing.get_origin(field.annotation) is typing.Literal:
        text += f"; one of {', '.join(map(str, typing.get_args(field.annotation)))}"
    return text


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:,g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _local_stack() -> dict[str, str]:
    """What `make run` sets, with the default ports and nothing set in the shell."""
    with tempfile.TemporaryDirectory(prefix="cscx-settings-") as log_dir:
        return Stack(Ports(), env={}, log_dir=Path(log_dir)).settings()


def _local(variables: tuple[str, ...], local: dict[str, str]) -> str:
    found = [
        (name, value) for pattern in variables for name, value in local.items() if fnmatch.fnmatchcase(name, pattern)
    ]
    if not found:
        return "not set"
    if found[0][0] == variables[0]:
        return f"`{found[0][1]}`"
    return ", ".join(f"`{name}={value}`" for name, value in found)


def in_readme(text: str) -> str:
    """The table between the README's markers."""
    return text.split(BEGIN + "\n", 1)[1].split(END, 1)[0]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="put the table in README.md")
    generated = table()
    if not parser.parse_args(argv).write:
        sys.stdout.write(generated)
        return 0
    text = README.read_text(encoding="utf-8")
    README.write_text(text.replace(BEGIN + "\n" + in_readme(text), BEGIN + "\n" + generated), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
