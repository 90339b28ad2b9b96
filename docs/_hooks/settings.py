"""MkDocs hook: what the docs show of rootserve's settings is made from config.py.

- The settings reference page is added at build time and never stored in docs/, so it
  cannot go stale: its Markdown is `rootserve.config.reference_markdown()`, from the same
  declarations the command line is built from.
- coming-from.md holds a marker where its table of uvicorn's and gunicorn's flags goes;
  the table is made from each setting's `elsewhere` ("uvicorn `--workers`, gunicorn
  `-w`"), split into a column per server.
"""

import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

PAGE = "reference/settings.md"
COMING_FROM = "coming-from.md"
FLAG_TABLE = "<!-- flags from the settings' elsewhere -->"
SERVERS = ("uvicorn", "gunicorn")  # a column each; any other name goes under "elsewhere"


def rootserve_config(repo_root):
    """rootserve.config, imported from `repo_root`/src when rootserve is not installed."""
    try:
        import rootserve.config
    except ImportError:  # rootserve not installed: use the source tree next to mkdocs.yml
        sys.path.insert(0, str(Path(repo_root) / "src"))
        import rootserve.config
    return rootserve.config


def settings_page(repo_root):
    """The Markdown of the settings page."""
    return rootserve_config(repo_root).reference_markdown()


def _parts(elsewhere):
    """`elsewhere` cut at its top-level commas (never inside `code` or parentheses)."""
    parts, depth, code, start = [], 0, False, 0
    for i, char in enumerate(elsewhere):
        code ^= char == "`"
        depth += (char == "(") - (char == ")")
        if char == "," and not code and depth == 0:
            parts.append(elsewhere[start:i].strip())
            start = i + 1
    return [*parts, elsewhere[start:].strip()]


def split_elsewhere(elsewhere):
    """{column: text}: "uvicorn and gunicorn `--x`" gives both columns `--x`; a part
    that names another server, or none, is kept whole under "elsewhere"."""
    columns = {}
    for part in _parts(elsewhere):
        match = re.fullmatch(r"([A-Za-z][\w ]*?) (`.*)", part)
        names = match[1].split(" and ") if match else []
        if names and all(name in SERVERS for name in names):
            for name in names:
                columns[name] = match[2]
        else:
            columns["elsewhere"] = ", ".join(filter(None, [columns.get("elsewhere"), part]))
    return columns


def _flag(info):
    """How the flag is written on the command line, as --help shows it."""
    if info.switch:
        return f"`{info.flag}`"
    value = "{" + ",".join(info.choices) + "}" if info.choices else info.metavar
    flag = f"`{info.flag} {value or info.name.upper()}`"
    return f"`{info.short}`, {flag}" if info.short else flag


def flag_table(infos):
    """The Markdown table of every setting that names its equivalents elsewhere."""
    lines = [
        "| uvicorn | gunicorn | rootserve | elsewhere |",
        "|---|---|---|---|",
    ]
    for info in infos:
        if not info.elsewhere:
            continue
        columns = split_elsewhere(info.elsewhere)
        cells = [columns.get(SERVERS[0], ""), columns.get(SERVERS[1], "")]
        cells += [_flag(info), columns.get("elsewhere", "")]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != COMING_FROM:
        return markdown
    if markdown.count(FLAG_TABLE) != 1:
        raise RuntimeError(f"docs/{COMING_FROM} must hold the line {FLAG_TABLE} once")
    repo_root = Path(config.config_file_path).parent
    infos = rootserve_config(repo_root).setting_info()
    return markdown.replace(FLAG_TABLE, flag_table(infos))


def on_files(files, config):
    if files.get_file_from_path(PAGE) is not None:
        raise RuntimeError(f"docs/{PAGE} is generated; delete the stored copy")
    repo_root = Path(config.config_file_path).parent
    files.append(File.generated(config, PAGE, content=settings_page(repo_root)))
    return files
