"""Line counting: statements only; comments, blank lines and docstrings do not count."""

from __future__ import annotations

import textwrap
from pathlib import Path

import variants
from harness.measure import loc

SAMPLE = textwrap.dedent(
    '''\
    """Module docstring,
    over two lines."""

    import os  # a trailing comment does not make a line count twice

    # a comment line


    def f(x):
        """Function docstring."""
        y = os.path.join(
            x,
            "a",
        )  # one statement over four lines
        return y


    class C:
        """Class docstring."""

        api_level = "level C"

        def g(self):
            return "a string that is a value, not a docstring"


    class D(C):
        pass


    "a bare string after the docstring position is code"
    '''
)
# import, def f, y = ..., return, class C, api_level, def g, return, class D, pass, bare string
EXPECTED = 11


def test_counts_statements_without_comments_blank_lines_and_docstrings():
    assert loc.logical_lines(SAMPLE) == EXPECTED


def test_a_source_without_trailing_newline():
    assert loc.logical_lines("x = 1\ny = 2") == 2


def test_source_info_hashes_and_reads_the_declared_api_level(tmp_path: Path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("def helper():\n    return 1\n")
    (pkg / "mine.py").write_text(SAMPLE + "from mypkg.helpers import helper\n")
    info = loc.source_info("mypkg.mine:D", pkg / "mine.py")
    assert info is not None
    # its own package's modules count, the package __init__ does not
    assert [f.name for f in info.files] == ["mine.py", "helpers.py"]
    assert info.loc == EXPECTED + 1 + 2
    assert info.api_level == "level C"  # inherited from C in the same module
    assert len(info.sha256) == 64


def test_keras_variants_count_their_shared_module_but_not_the_contract():
    info = loc.source_info(variants.REGISTRY["keras_sequential"])
    names = [f.name for f in info.files]
    assert names == ["keras_sequential.py", "keras_common.py", "keras_optimizers.py"]
    numpy_info = loc.source_info(variants.REGISTRY["numpy_scratch"])
    assert [f.name for f in numpy_info.files] == ["numpy_scratch.py"]  # base.py is the contract


def test_an_unknown_module_has_no_source():
    assert loc.source_info("no_such_module_anywhere:X") is None
