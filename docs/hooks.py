"""mkdocs hook: parts of pages generated at build time, so they follow the code and the README.

- `<!-- readme-section: HEADING -->`: that section of the project README, from the heading whose text starts
  with HEADING to the next heading of the same or a higher level (the validation matrix on the benchmarks page);
- `<!-- samplax-samplers: NAME ... -->`: what `samplax samplers NAME ...` prints (each sampler's docstring and
  settings with defaults and types, read from the registry);
- `<!-- samplax-help: COMMAND -->`: `samplax COMMAND --help` (`samplax --help` for `main`).

A heading, sampler or command that does not exist fails the build.
"""

import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- (readme-section|samplax-samplers|samplax-help): (.+?) -->")


def readme_section(heading: str) -> str:
    lines = README.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#+) (.*)", line)
        if m and m.group(2).startswith(heading):
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if (h := re.match(r"(#+) ", lines[j])) and len(h.group(1)) <= level), len(lines))
            return "\n".join(["## " + m.group(2)] + lines[i + 1:end])
    raise ValueError(f"docs: README.md has no heading starting with {heading!r}")


def samplers_text(names: str) -> str:
    from samplax.api import factory
    from samplax.cli import describe_sampler

    out = []
    for name in names.split():
        if factory(name) is None:
            raise ValueError(f"docs: no sampler {name!r} in the registry")
        out.append(describe_sampler(name))
    return "```text\n" + "\n\n".join(out) + "\n```"


def help_text(command: str) -> str:
    from samplax.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: fix it so the page does not vary
    parser = build_parser()
    if command != "main":
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        if command not in sub.choices:
            raise ValueError(f"docs: samplax has no command {command!r}")
        parser = sub.choices[command]
    return "```text\n" + parser.format_help().rstrip() + "\n```"


def _replace(m: re.Match) -> str:
    kind, arg = m.group(1), m.group(2).strip()
    if kind == "readme-section":
        return readme_section(arg)
    if kind == "samplax-samplers":
        return samplers_text(arg)
    return help_text(arg)


def on_page_markdown(markdown, page, config, files, **kwargs):
    return MARKER.sub(_replace, markdown)
