"""The one YAML loader of dvflow: strict, bounded, every problem an InvalidFileError.

Every YAML file dvflow reads goes through here: ``dvc.yaml``, ``dvc.lock``
and ``.dvc`` files (in the work tree and in every commit), params and
metrics files, ``dvflow.yaml``. A file is refused, naming it, when it is
larger than ``MAX_BYTES``, nested deeper than ``MAX_DEPTH``, or when its
aliases would add more than ``MAX_ALIAS_NODES`` nodes or ``MAX_BYTES`` of
text once expanded ("billion laughs": 1 KB of ``&a``/``*a`` that stands
for 10^9 values).

PyYAML builds an alias as a shared reference, so loading such a file is
fast; what hangs is whoever walks the result (flattening params, hashing,
JSON). The composed node graph is measured before any Python object is
built: each node once (memoised), its expanded size computed, not walked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._exceptions import InvalidFileError, UnsafeFileError

MAX_BYTES = 64 * 1024 * 1024
"""A YAML file larger than this (in bytes) is not read."""

MAX_DEPTH = 200
"""Deeper nesting is refused (dvflow's own walks are recursive; real files nest < 20)."""

MAX_ALIAS_NODES = 1_000_000
"""Aliases may add at most this many nodes (and ``MAX_BYTES`` of text) to a document."""

try:  # The C loader is 5-10x faster on large dvc.lock files.
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pyyaml built without libyaml
    _Loader = yaml.SafeLoader


def load_yaml_text(text: str | bytes, path: Path | str) -> Any:
    """The document in ``text``; ``path`` names it in errors (``abc12345:dvc.lock`` for a commit).

    Raises UnsafeFileError past a limit, InvalidFileError when it does not parse.
    """
    if len(text) > MAX_BYTES:
        raise too_large(path, len(text))
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_bounds(node, path, alias_free=_alias_free(text))
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidFileError(path, f"invalid YAML{where}: {problem}") from exc
    except RecursionError:  # the pure-Python composer recurses (no libyaml)
        raise UnsafeFileError(path, f"YAML nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError) as exc:
        raise InvalidFileError(path, f"unreadable YAML: {exc}") from exc
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> Any:
    """The document in the YAML file at ``path`` (see ``load_yaml_text``)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise too_large(path, size)
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFileError(path, "not UTF-8 text") from exc
    except OSError as exc:
        raise InvalidFileError(path, f"cannot read: {exc.strerror}") from exc
    return load_yaml_text(text, path)


def too_large(path: Path | str, size: int) -> UnsafeFileError:
    return UnsafeFileError(
        path, f"{size:,} bytes: larger than the {MAX_BYTES // (1024 * 1024)} MB dvflow reads"
    )


def _alias_free(text: str | bytes) -> bool:
    """No anchor can be defined, so no alias can refer to one (an undefined alias fails)."""
    return ("&" not in text) if isinstance(text, str) else (b"&" not in text)


def _check_bounds(root: Node, path: Path | str, *, alias_free: bool) -> None:
    """Refuse ``root`` when too deep or when its aliases expand past the limits."""
    if alias_free:
        _check_depth(root, path)
        return
    nodes, chars, own_nodes, own_chars = _measure(root, path)
    if nodes - own_nodes > MAX_ALIAS_NODES:
        raise UnsafeFileError(
            path,
            f"an alias bomb: YAML aliases expand it to {nodes:,} values "
            f"(at most {MAX_ALIAS_NODES:,} may come from aliases)",
        )
    if chars - own_chars > MAX_BYTES:
        raise UnsafeFileError(
            path,
            f"an alias bomb: YAML aliases expand it to {chars:,} characters "
            f"(at most {MAX_BYTES // (1024 * 1024)} MB may come from aliases)",
        )


def _too_deep(path: Path | str) -> UnsafeFileError:
    return UnsafeFileError(path, f"YAML nested deeper than {MAX_DEPTH} levels")


def _check_depth(root: Node, path: Path | str) -> None:
    """A tree (no aliases): each collection once, level by level, scalars skipped."""
    level: list[Node] = [root]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise _too_deep(path)
        below: list[Node] = []
        for node in level:
            if node.__class__ is MappingNode:
                for pair in node.value:
                    below += [n for n in pair if n.__class__ is not ScalarNode]
            elif node.__class__ is SequenceNode:
                below += [n for n in node.value if n.__class__ is not ScalarNode]
        level = below


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _measure(root: Node, path: Path | str) -> tuple[int, int, int, int]:
    """Expanded (nodes, scalar characters), then the same counting each node once.

    Memoised post-order walk without recursion: a node an alias repeats is
    measured once and its size multiplied, never walked again. A node that
    contains an alias to itself (``&a [*a]``) is an infinite document.
    """
    sizes: dict[int, tuple[int, int, int]] = {}  # id -> (nodes, chars, height)
    on_path: set[int] = set()
    own_nodes = own_chars = 0
    stack: list[tuple[Node, list[Node] | None]] = [(root, None)]
    while stack:
        node, children = stack.pop()
        key = id(node)
        if children is None:
            if key in sizes:
                continue
            if key in on_path:
                raise UnsafeFileError(path, "a YAML alias refers to a node that contains it")
            if isinstance(node, ScalarNode):
                length = len(node.value)
                sizes[key] = (1, length, 1)
                own_nodes, own_chars = own_nodes + 1, own_chars + length
                continue
            if len(on_path) >= MAX_DEPTH:
                raise _too_deep(path)
            on_path.add(key)
            children = _children(node)
            stack.append((node, children))
            stack.extend((child, None) for child in children if id(child) not in sizes)
            continue
        nodes, chars, height = 1, 0, 0
        for child in children:
            if id(child) in on_path:
                raise UnsafeFileError(path, "a YAML alias refers to a node that contains it")
            n, c, h = sizes[id(child)]
            nodes, chars, height = nodes + n, chars + c, max(height, h)
        if height + 1 > MAX_DEPTH:
            raise _too_deep(path)
        on_path.discard(key)
        sizes[key] = (nodes, chars, height + 1)
        own_nodes += 1
    nodes, chars, _ = sizes[id(root)]
    return nodes, chars, own_nodes, own_chars
