"""sml/'s layout: the textbook on top, short files, the training loop in one screen, one seam.

What issue 25 promised a reader, kept true by tests: the top of ``sml/`` is what a learner
reads (README.md's "Reading order" lists it with line counts that stay right), no file
grows past 400 lines, the file with the training step stays small, and the model knows
nothing of the learner's harness.
"""

import ast
import re

import pytest

from tests.conftest import ROOT

SML = ROOT / "sml"
TEXTBOOK = sorted([*SML.glob("*.py"), *(SML / "micrograd").glob("*.py"), *(SML / "tokenizer").glob("*.py")])


def lines(path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def sml_imports(path) -> set[str]:
    """The sml modules ``path`` imports, at the top or inside a function or TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sml":
            for a in node.names:  # `from sml.run import budget` imports the module sml.run.budget
                module = f"{node.module}.{a.name}"
                found.add(module if (ROOT / (module.replace(".", "/") + ".py")).exists() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sml"}
    return found


@pytest.mark.parametrize("path", sorted(SML.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_in_sml_is_over_400_lines(path):
    assert lines(path) <= 400, f"{path.relative_to(ROOT)}: {lines(path)} lines; split it by what it is"


def test_the_training_step_sits_in_a_short_file_importing_at_most_8_sml_modules():
    path = SML / "train.py"
    assert "def train_step(" in path.read_text(encoding="utf-8") and "def loop(" in path.read_text(encoding="utf-8")
    assert lines(path) <= 250
    assert len(sml_imports(path)) <= 8, sorted(sml_imports(path))


def test_the_model_knows_nothing_of_the_learners_harness():
    text = (SML / "model.py").read_text(encoding="utf-8")
    assert not re.search(r"\bmine\b|\btheirs\b", text)
    assert not any(m.startswith("sml.learn") for m in sml_imports(SML / "model.py"))


@pytest.mark.parametrize("doc", ["README.md", "LEARN.md"])
def test_the_textbook_stays_under_2900_lines_and_the_docs_give_its_reading_order_and_sizes(doc):
    """Every textbook file is in the doc's reading order, with its line count within 10%."""
    assert sum(map(lines, TEXTBOOK)) <= 2900  # 2,572 after issue 25; issue 27's dials ~50; issue 28's chat ~190
    text = (ROOT / doc).read_text(encoding="utf-8")
    section = text[text.index("### Reading order"):]
    section = section[: section.index("\n#")]
    listed = dict(re.findall(r"`(sml/[\w/]+\.py)` \| ([\d,]+) \|", section))
    for path in TEXTBOOK:
        name = str(path.relative_to(ROOT))
        if path.name == "__init__.py":
            continue  # a package's docstring and exports
        assert name in listed, f"{doc}'s reading order leaves out {name}"
        assert abs(int(listed[name].replace(",", "")) - lines(path)) <= max(10, lines(path) // 10), name
    total = re.search(r"\(?([\d,]+) lines", section)
    assert total and abs(int(total.group(1).replace(",", "")) - sum(map(lines, TEXTBOOK))) <= 100
