"""Comparing two marked YAML trees, marks included (the plain reader against libyaml)."""

from __future__ import annotations

from typing import Any

from pbxd.config.yamlsource import MarkedMap, MarkedSeq


def _kind(node: Any) -> type:
    """The node's type, a LinePair (marks made on demand) counting as the MarkedMap it is."""
    return MarkedMap if isinstance(node, MarkedMap) else type(node)


def difference(plain: Any, careful: Any, path: str = "$") -> str | None:
    """Where two trees differ (value, type or mark), or None when they are the same."""
    if _kind(plain) is not _kind(careful):
        return f"{path}: {type(plain).__name__} vs {type(careful).__name__}"
    if isinstance(plain, MarkedMap):
        if plain.mark != careful.mark or list(plain) != list(careful):
            return f"{path}: {plain.mark} {list(plain)} vs {careful.mark} {list(careful)}"
        for key in plain:
            marks = (plain.key_marks[key], plain.value_marks[key])
            if marks != (careful.key_marks[key], careful.value_marks[key]):
                return f"{path}.{key}: marks {marks} vs careful"
            found = difference(plain[key], careful[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(plain, MarkedSeq):
        if plain.mark != careful.mark or plain.item_marks != careful.item_marks:
            return f"{path}: marks {plain.mark} {plain.item_marks} vs careful"
        for index, (mine, theirs) in enumerate(zip(plain, careful, strict=True)):
            found = difference(mine, theirs, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if plain == careful else f"{path}: {plain!r} vs {careful!r}"
