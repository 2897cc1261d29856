"""mkdocs hook: `<!-- readme-section: HEADING -->` in a page is replaced by that section of the project README.

The section runs from the heading whose text starts with HEADING to the next heading of the same or a higher
level, so the page follows the README as it changes. A heading that is not found fails the build.
"""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"<!-- readme-section: (.+?) -->")


def readme_section(heading: str) -> str:
    lines = README.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#+) (.*)", line)
        if m and m.group(2).startswith(heading):
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if (h := re.match(r"(#+) ", lines[j])) and len(h.group(1)) <= level), len(lines))
            return "\n".join(["#" * 2 + " " + m.group(2)] + lines[i + 1:end])
    raise ValueError(f"docs: README.md has no heading starting with {heading!r}")


def on_page_markdown(markdown, page, config, files, **kwargs):
    return MARKER.sub(lambda m: readme_section(m.group(1)), markdown)
