"""``python -m sml.learn [PART ...]``: grade the learner's parts in mine/ (``make grade``)."""

from pathlib import Path
from typing import Annotated

import typer

from sml.learn.core import grade, parts
from sml.learn.mine import PARTS as NAMES

MARKS = {"pass": "[x]", "todo": "[ ]", "fail": "[!]"}


def main(names: Annotated[list[str] | None, typer.Argument(
             help=f"Parts to grade (default: all): {', '.join(NAMES)}.", show_default=False)] = None,
         directory: Annotated[Path, typer.Option("--dir", help="Where the learner's files are.")] = Path("mine"),
         ) -> None:
    """Grade your parts against the reference, as a checklist."""
    unknown = [n for n in names or () if n not in NAMES]
    if unknown:
        raise typer.BadParameter(f"no part {', '.join(unknown)}: the parts are {', '.join(NAMES)}",
                                 param_hint="PART")
    chosen = [p for p in parts() if not names or p.name in names]
    print(f"Grading {directory}/ against the reference (LEARN.md has the order and the why):")
    results = []
    for number, part in enumerate(parts(), start=1):
        if part not in chosen:
            continue
        result = grade(part, directory / part.file)
        results.append(result)
        mark = MARKS[result.status]
        checks = f"{result.passed} of {len(part.checks)} checks pass"
        line = f"  {mark} {number:>2}. {part.name:<11} {part.title}"
        if result.status == "pass":
            print(f"{line}: {checks}")
        else:
            print(line)
            print(f"          {'to do' if result.status == 'todo' else 'FAILS'}: {result.message}"
                  + (f" ({checks})" if result.passed else ""))
    counts = {s: sum(r.status == s for r in results) for s in MARKS}
    print(f"{counts['pass']} pass, {counts['fail']} fail, {counts['todo']} to do.", end="")
    following = next((r for r in results if r.status != "pass"), None)
    print(f" Next: {following.part.chapter}, then make grade PART={following.part.name}" if following else
          " Every part you graded passes.")
    raise typer.Exit(1 if counts["fail"] else 0)


if __name__ == "__main__":
    typer.run(main)
