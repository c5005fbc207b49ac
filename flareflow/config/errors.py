"""What is wrong with a config: every problem with its file, key path, offending value and reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: the longest offending value a message shows, in characters
VALUE_WIDTH = 60


def shorten(value: Any, width: int = VALUE_WIDTH) -> str:
    """Return ``repr(value)``, cut to ``width`` characters.

    :param value: the offending value
    :param width: the longest text returned
    """
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class Problem:
    """One problem of a config.

    :param file: the file the bad setting comes from (or ``trigger params``)
    :param key_path: the dotted key path of the bad setting ('' for the whole file)
    :param reason: what is wrong
    :param value: the offending value, shortened (None when there is none, e.g. a missing key)
    """

    file: str
    key_path: str
    reason: str
    value: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: {self.key_path}" if self.key_path else self.file
        # shown, unless the reason already quotes it ('num' is used twice); a short one may be there by chance
        shown = self.value is not None and (len(self.value) < 3 or self.value not in self.reason)
        return f"{where}: {self.reason}" + (f" (got {self.value})" if shown else "")


class ConfigError(ValueError):
    """The config is missing, unreadable or invalid: every problem found, in every file.

    ``file``, ``key_path`` and ``reason`` are those of the first problem; ``problems`` holds them all.

    :param file: the file the bad value comes from
    :param key_path: the dotted key path of the bad value ('' for the whole file)
    :param reason: what is wrong
    :param problems: every problem (then ``file``, ``key_path`` and ``reason`` are ignored)
    """

    def __init__(self, file: str = "", key_path: str = "", reason: str = "", *,
                 problems: Iterable[Problem] = ()) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems) or (Problem(file, key_path, reason),)
        first = self.problems[0]
        self.file, self.key_path, self.reason = first.file, first.key_path, first.reason
        if len(self.problems) == 1:
            message = str(first)
        else:  # one problem a line, each a complete "file: key path: reason"
            message = f"{len(self.problems)} config problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.problems,)


def _rebuild(problems: tuple[Problem, ...]) -> ConfigError:
    return ConfigError(problems=problems)
