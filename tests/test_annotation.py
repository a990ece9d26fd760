"""The kernels' hot path is pure C: `cython -a` scores every line of every nogil function 0."""
import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_annotation.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("check_annotation", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nogil_kernels_do_not_touch_python(capsys):
    tool = _load_tool()
    assert len(tool.nogil_lines(tool.SOURCE)) > 50  # the parser found the kernels
    assert tool.main() == 0, capsys.readouterr().out


def test_checker_flags_python_interaction():
    # Without cdivision, Cython guards each C division with a Python ZeroDivisionError
    # check: the checker must see those lines, or a white report would mean nothing.
    tool = _load_tool()
    kernel_lines = tool.nogil_lines(tool.SOURCE)
    tool.RELEASE_DIRECTIVES = ["language_level=3"]
    flagged = [n for n, (score, _) in tool.scores(tool.SOURCE).items()
               if n in kernel_lines and score > 0]
    assert flagged
