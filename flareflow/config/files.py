"""Find and read the config files: exact discovery, safe reading, YAML with every mistake located.

Discovery is exact: a ``*.yaml`` or ``*.yml`` file (extension in any case) that is not one of
:data:`CONFIG_FILES` is an error (most likely a misspelt job file, whose settings would be silently
ignored), hidden files (editor swap and lock files) excepted. Symlinks are followed; a dangling one or
a loop is an error. Reading never raises: every problem (a folder where a file should be, a file that
is not UTF-8, a YAML syntax error with its line, a key given twice) comes back as a :class:`Problem`.
"""

from __future__ import annotations

import difflib
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from flareflow.config.errors import Problem
from flareflow.config.schema import JOBS

DEFAULT_FILE = "default.yaml"
CONFIG_FILES: tuple[str, ...] = (DEFAULT_FILE, *(f"{job}.yaml" for job in JOBS))
YAML_SUFFIXES = (".yaml", ".yml")
#: a config file is small; a larger one is a mistake (and reading it could take long)
MAX_BYTES = 1_000_000
#: values after expanding YAML aliases; more is an alias bomb, which would hang validation
MAX_VALUES = 100_000
_STR_TAG, _MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


class _YamlProblem(Exception):
    def __init__(self, key_path: str, reason: str) -> None:
        super().__init__(reason)
        self.key_path, self.reason = key_path, reason


def find_config_files(config_dir: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Return the config files present in ``config_dir`` (by name) and what is wrong with the folder.

    :param config_dir: the folder holding ``default.yaml`` and ``<job>.yaml``
    """
    try:
        entries = sorted(config_dir.iterdir())
    except FileNotFoundError:
        return {}, [Problem(str(config_dir), "", "config folder not found")]
    except NotADirectoryError:
        return {}, [Problem(str(config_dir), "", "not a folder: the config folder (FLAREFLOW_CONFIG_DIR) holds "
                                                 f"{', '.join(CONFIG_FILES)}")]
    except OSError as err:
        return {}, [Problem(str(config_dir), "", f"cannot read the config folder: {err.strerror or err}")]
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    for entry in entries:
        if entry.name.startswith(".") or entry.suffix.lower() not in YAML_SUFFIXES:
            continue
        if entry.name in CONFIG_FILES:
            found[entry.name] = entry
            continue
        near = [n for n in CONFIG_FILES if n.lower() == entry.name.lower()
                or Path(n).stem == Path(entry.name).stem.lower()]
        near = near or difflib.get_close_matches(entry.name.lower(), CONFIG_FILES, n=1, cutoff=0.75)
        hint = f"; rename it {near[0]}?" if near else ""
        problems.append(Problem(str(entry), "", f"not a config file: config files are named exactly "
                                                f"{', '.join(CONFIG_FILES)}{hint}"))
    return found, problems


def read_config_file(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Return a config file's content (a mapping), or None and why it cannot be used.

    :param path: the file
    """
    def fail(reason: str, key_path: str = "") -> tuple[None, list[Problem]]:
        return None, [Problem(str(path), key_path, reason)]

    try:
        text = _read_text(path)
    except _YamlProblem as err:
        return fail(err.reason)
    try:
        content = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader
    except _YamlProblem as err:
        return fail(err.reason, err.key_path)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" on line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = ""
        if err.context:
            started = err.context_mark.line + 1 if err.context_mark else None
            context = f" ({err.context}{f' started on line {started}' if started else ''})"
        return fail(f"not valid YAML{where}: {err.problem or err.context}{context}")
    except yaml.YAMLError as err:
        return fail(f"not valid YAML: {err}")
    except RecursionError:
        return fail("not valid YAML: nested too deeply")
    if content is None:
        return {}, []
    if not isinstance(content, dict):
        return fail(f"must be a mapping of sections (federation: …, data: …), got a {type(content).__name__}")
    return content, []


def _read_text(path: Path) -> str:
    """Return a file's text, read as UTF-8 (a byte order mark allowed), or raise why not."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except FileNotFoundError as err:
            raise _YamlProblem("", f"a symlink to {os.readlink(path)}, which does not exist") from err
        except (OSError, RuntimeError) as err:  # RuntimeError: Python < 3.13 on a loop
            raise _YamlProblem("", f"cannot read: a symlink loop ({os.readlink(path)})") from err
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise _YamlProblem("", "a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise _YamlProblem("", "not a regular file (a device or a pipe?)")
        if info.st_size > MAX_BYTES:
            raise _YamlProblem("", f"{info.st_size} bytes: a config file is below {MAX_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise _YamlProblem("", "file not found") from err
    except OSError as err:  # a symlink loop, no permission, ...
        raise _YamlProblem("", f"cannot read: {err.strerror or err}") from err
    for bom, encoding in _BOMS.items():
        if raw.startswith(bom):
            raise _YamlProblem("", f"{encoding} text: save it as UTF-8")
    if b"\x00" in raw:
        raise _YamlProblem("", "holds NUL bytes (UTF-16 without a byte order mark?): save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise _YamlProblem("", f"not UTF-8 text: byte {raw[err.start]:#04x} on line {line} "
                               "(saved as Latin-1 or Windows-1252?): save it as UTF-8") from err


class _ConfigLoader(yaml.SafeLoader):
    """A safe YAML loader for configs: keys are text, a key given twice or an alias bomb is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping whose keys are their text as written: every key of a config is a name.

        YAML 1.1 reads a key ``no``, ``on`` or ``1`` as a boolean or a number; a column called ``no``
        stays ``"no"``.
        """
        node.value = [(_as_text(key), value) for key, value in node.value]
        return super().construct_mapping(node, deep=deep)

    def construct_document(self, node: yaml.Node) -> Any:
        """Check the document (duplicate keys, aliases), then build it."""
        _check(node, (), {}, set())
        return super().construct_document(node)


def _as_text(key: yaml.Node) -> yaml.Node:
    if isinstance(key, yaml.ScalarNode) and key.tag not in (_STR_TAG, _MERGE_TAG):
        return yaml.ScalarNode(_STR_TAG, key.value, key.start_mark, key.end_mark)
    return key


def _check(node: yaml.Node, path: tuple[str, ...], sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Raise on a key given twice or an alias containing itself; return the node's expanded value count."""
    if id(node) in sizes:  # an alias repeats a node: checked once, counted each time
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise _YamlProblem(".".join(path), "an alias that contains itself")
    open_nodes.add(id(node))
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_check(item, (*path, str(i)), sizes, open_nodes) for i, item in enumerate(node.value))
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen and key_node.tag != _MERGE_TAG:
                raise _YamlProblem(".".join((*path, key)), f"duplicate key (line {key_node.start_mark.line + 1})")
            seen.add(key)
            size += _check(value_node, (*path, key), sizes, open_nodes)
    open_nodes.discard(id(node))
    if size > MAX_VALUES:
        raise _YamlProblem(".".join(path), f"more than {MAX_VALUES} values once its aliases are expanded")
    sizes[id(node)] = size
    return size
