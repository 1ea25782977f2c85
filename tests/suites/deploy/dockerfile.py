"""Read the Dockerfile and .dockerignore the way Docker does, without a Docker engine.

Only what the deploy tests need: instructions per stage (line continuations and comments
handled), the stage chain that a build target resolves to (``FROM <stage>`` and global
``ARG`` defaults in ``FROM``), the environment an image ends with, and the build context that
``.dockerignore`` lets through (Go ``filepath.Match`` patterns with ``**``; the last matching
pattern wins; ``!`` re-includes; a pattern matching a folder matches everything inside it).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        text = self.args.strip()
        if text.startswith("["):
            value = json.loads(text)
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
            return value
        return None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def expand(text: str, env: dict[str, str]) -> str:
    """``$VAR`` / ``${VAR}`` substitution as Docker does in ENV, FROM, COPY, USER..."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def _logical_lines(text: str) -> Iterator[str]:
    buffer: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue  # comments vanish, even inside a continued instruction
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1])
            continue
        buffer.append(stripped)
        yield " ".join(part.strip() for part in buffer if part.strip())
        buffer = []
    if buffer:
        yield " ".join(buffer)


class Dockerfile:
    """The stages of one Dockerfile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.global_args: dict[str, str] = {}
        self.stages: list[Stage] = []
        for line in _logical_lines(path.read_text()):
            keyword, _, args = line.partition(" ")
            keyword = keyword.upper()
            if keyword == "FROM":
                words = args.split()
                words = [w for w in words if not w.startswith("--platform")]
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                self.stages.append(Stage(base=words[0], name=name))
            elif not self.stages:
                assert keyword == "ARG", f"only ARG may precede the first FROM, got {keyword}"
                arg_name, _, default = args.partition("=")
                self.global_args[arg_name.strip()] = default.strip()
            else:
                self.stages[-1].instructions.append(Instruction(keyword, args.strip()))

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r} in {self.path}")

    def chain(
        self, target: str | None = None, build_args: dict[str, str] | None = None
    ) -> list[Stage]:
        """The stages a build of ``target`` (default: the last stage) stacks, base first."""
        args = {**self.global_args, **(build_args or {})}
        stage = self.stages[-1] if target is None else self.stage(target)
        chain = [stage]
        names = {s.name for s in self.stages if s.name}
        while (base := expand(chain[0].base, args)) in names:
            chain.insert(0, self.stage(base))
        return chain

    @staticmethod
    def instructions(chain: list[Stage], keyword: str) -> list[Instruction]:
        return [i for stage in chain for i in stage.of(keyword)]

    @staticmethod
    def last(chain: list[Stage], keyword: str) -> Instruction | None:
        found = Dockerfile.instructions(chain, keyword)
        return found[-1] if found else None

    @staticmethod
    def environment(chain: list[Stage], start: dict[str, str]) -> dict[str, str]:
        """The ENV an image built from ``chain`` ends with, starting from ``start``."""
        env = dict(start)
        for instruction in Dockerfile.instructions(chain, "ENV"):
            for word in shlex.split(instruction.args):
                key, sep, value = word.partition("=")
                assert sep, f"use ENV KEY=VALUE, got {instruction.args!r}"
                env[key] = expand(value, env)
        return env


# ----- .dockerignore ------------------------------------------------------------------------
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


class DockerIgnore:
    """The patterns of a ``.dockerignore`` and which paths they leave out of the context."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, str, re.Pattern[str]]] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = line[1:].strip() if include else line
            pattern = pattern.strip("/")
            self.rules.append((include, pattern, _pattern_regex(pattern)))

    def excluded(self, relative: str) -> bool:
        parts = relative.strip("/").split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for include, _, regex in self.rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                result = not include
        return result

    def _may_reinclude_under(self, folder: str) -> bool:
        return any(
            include and (pattern.startswith(folder + "/") or pattern.startswith("**"))
            for include, pattern, _ in self.rules
        )

    def context_files(self, root: Path) -> list[Path]:
        """Every file under ``root`` that a build with this .dockerignore sends."""
        found: list[Path] = []

        def walk(folder: Path) -> None:
            for entry in sorted(folder.iterdir()):
                relative = entry.relative_to(root).as_posix()
                if entry.is_dir() and not entry.is_symlink():
                    if self.excluded(relative) and not self._may_reinclude_under(relative):
                        continue
                    walk(entry)
                elif not self.excluded(relative):
                    found.append(entry)

        walk(root)
        return found
