"""Every output block a page shows is produced by running its example here and comparing."""

import re

import pytest
from guide_support import EXAMPLES, GUIDE, OUTPUT, normalise, run_example

# example script (relative to docs/guide/examples) -> the output file a page shows
SCRIPT_OUTPUTS = {
    "ch1_call_by_hand.py": "ch1_call_by_hand.txt",
    "ch2_demo.py": "ch2_demo.txt",
    "ch2_compare.py": "ch2_compare.txt",
    "ch3_demo.py": "ch3_demo.txt",
    "ch3_stack.py": "ch3_stack.txt",
    "ch3_validate.py": "ch3_validate.txt",
    "answers/ch1_ex1.py": "ch1_ex1.txt",
    "answers/ch1_ex2.py": "ch1_ex2.txt",
    "answers/ch1_ex3.py": "ch1_ex3.txt",
    "answers/ch2_ex1.py": "ch2_ex1.txt",
    "answers/ch2_ex2.py": "ch2_ex2.txt",
    "answers/ch2_ex3.py": "ch2_ex3.txt",
    "answers/ch3_ex1.py": "ch3_ex1.txt",
    "answers/ch3_ex2.py": "ch3_ex2.txt",
    # -- part 1 additions
    "ch3_flask.py": "ch3_flask.txt",
    "ch3_errors.py": "ch3_errors.txt",
    # -- chapter 5
    "ch5_call_by_hand.py": "ch5_call_by_hand.txt",
    "ch5_wsgi_inside.py": "ch5_wsgi_inside.txt",
    "ch5_frameworks.py": "ch5_frameworks.txt",
    "answers/ch5_ex1.py": "ch5_ex1.txt",
    "answers/ch5_ex2.py": "ch5_ex2.txt",
    # -- chapter 6
    "ch6_flask_by_hand.py": "ch6_flask_by_hand.txt",
    "ch6_fastapi_by_hand.py": "ch6_fastapi_by_hand.txt",
    "ch6_middleware.py": "ch6_middleware.txt",
    "answers/ch6_ex1.py": "ch6_ex1.txt",
    "answers/ch6_ex2.py": "ch6_ex2.txt",
}

# Output files compared by other tests, which also check what the numbers must show.
TESTED_ELSEWHERE = {
    "ch2_hello_server.txt": "test_guide_serving.py",
    "ch2_hello_curl.txt": "test_guide_serving.py",
    "ch4_measure.txt": "test_guide_ch4.py",
    "ch4_ex1.txt": "test_guide_ch4.py",
    "ch4_ex2.txt": "test_guide_ch4.py",
    # -- part 1 additions
    "ch3_streaming.txt": "test_guide_ch3_server.py",
    "ch3_gunicorn.txt": "test_guide_serving.py",
    "ch3_gunicorn_curl.txt": "test_guide_serving.py",
    "ch4_crowd.txt": "test_guide_ch4.py",
    # -- chapter 5
    "ch5_servers.txt": "test_guide_ch5.py",
    "ch5_trace.txt": "test_guide_ch5.py",
    "ch5_strict.txt": "test_guide_ch5.py",
    # -- chapter 6
    "ch6_testing.txt": "test_guide_ch6.py",
}

INCLUDE = re.compile(r'^\s*-{1,}8<-{1,}\s+"([^"]+)"', re.MULTILINE)


def included_files():
    """Every file a page of the guide includes with pymdownx.snippets, relative to the repo."""
    found = set()
    for page in GUIDE.rglob("*.md"):
        for name in INCLUDE.findall(page.read_text(encoding="utf-8")):
            found.add(name.split(":")[0])  # "file.py:section" includes part of file.py
    return found


@pytest.mark.parametrize("script", sorted(SCRIPT_OUTPUTS))
def test_output_shown_on_the_page_is_what_the_example_prints(script):
    expected = (OUTPUT / SCRIPT_OUTPUTS[script]).read_text(encoding="utf-8")
    assert normalise(run_example(script)) == normalise(expected)


def test_every_output_file_is_compared_by_a_test():
    on_disk = {path.name for path in OUTPUT.glob("*.txt")}
    assert on_disk == set(SCRIPT_OUTPUTS.values()) | set(TESTED_ELSEWHERE)


def test_every_output_file_and_example_is_shown_on_a_page():
    shown = included_files()
    repo = EXAMPLES.parents[2]
    for path in sorted(EXAMPLES.rglob("*")):
        if path.suffix in {".py", ".txt"} and "__pycache__" not in path.parts:
            assert str(path.relative_to(repo)) in shown, f"no page includes {path.name}"


def test_no_include_line_was_rewritten_by_a_formatter():
    # ruff format (0.16 and later) rewrites `--8<-- "x"` in Python code blocks of Markdown
    # files as `--8 < --"x"`; docs/ruff.toml keeps it away from them, this test makes sure.
    for page in GUIDE.parent.rglob("*.md"):
        assert "--8 <" not in page.read_text(encoding="utf-8"), page


def test_every_included_file_exists():
    repo = EXAMPLES.parents[2]
    for name in included_files():
        assert (repo / name).is_file(), name
