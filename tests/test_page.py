"""The generated blocks of a results page: found, read and rewritten, and nothing else."""

from __future__ import annotations

import re

import pytest

from perspectives.errors import InputError
from perspectives.experiments.page import block_body, read_blocks, replace_block
from perspectives.experiments.reproduction import regenerate

TABLE = "| a |\n|---|\n| 1 |\n"


def test_only_the_block_changes_and_odd_line_breaks_stay_as_they_are():
    # str.splitlines() would break lines at the form feed, U+2028 and NEL, and rejoin them
    # with "\n"; the page's one LF line would come out CRLF.
    before = "# Title\r\nform\x0cfeed, a\u2028line separator, a NEL\x85 too\r\n"
    after = "one LF line\nlast\x0c\u2028"
    page = before + "<!-- BEGIN t -->\r\nold body\r\nmore\r\n<!-- END t -->\r\n" + after
    (block,) = read_blocks(page)
    assert (block.begin, block.end) == (2, 5)
    assert block_body(page, block) == "old body\nmore"  # no "\r" left in the cells
    out = replace_block(page, "t", TABLE)
    # The body is written with the page's line ending (CRLF, most of its lines).
    block = "<!-- BEGIN t -->\r\n| a |\r\n|---|\r\n| 1 |\r\n<!-- END t -->\r\n"
    assert out == before + block + after
    assert replace_block(out, "t", TABLE) == out


def test_an_lf_page_with_one_crlf_line_keeps_it_and_stays_lf():
    page = "a crlf line\r\n<!-- BEGIN t -->\nold\n<!-- END t -->\nend\n"
    out = replace_block(page, "t", TABLE)
    assert out == "a crlf line\r\n<!-- BEGIN t -->\n| a |\n|---|\n| 1 |\n<!-- END t -->\nend\n"
    assert replace_block(page, "t", "") == "a crlf line\r\n<!-- BEGIN t -->\n<!-- END t -->\nend\n"


@pytest.mark.parametrize(
    ("page", "line"),
    [
        ("a\x0cb\u2028c\x85d\r\n<!-- BEGIN ../x -->\r\n", 2),
        ("a\u2028b\n\n<!-- BEGIN t -->\n", 3),
        ("x\x0c\ny\u2029\n<!-- END t -->\n", 3),
    ],
)
def test_error_lines_count_newlines_only(page, line):
    with pytest.raises(InputError, match=rf"^page\.md, line {line}:"):
        read_blocks(page, "page.md")


EXAMPLE = """How a block is marked:

```markdown
<!-- BEGIN cs3-polarization -->
(the table)
<!-- END cs3-polarization -->
```

~~~
<!-- BEGIN only-a-begin -->
~~~

````
```
<!-- END shown-inside-a-longer-fence -->
```
````

  > ```
  > <!-- BEGIN quoted -->
  > ```

<!-- BEGIN verdicts -->
stale
<!-- END verdicts -->
"""


def test_markers_inside_code_fences_are_text_not_blocks():
    (block,) = read_blocks(EXAMPLE)
    assert block.name == "verdicts" and block.begin == EXAMPLE.splitlines().index(
        "<!-- BEGIN verdicts -->"
    )
    with pytest.raises(InputError, match="no block 'cs3-polarization'"):
        replace_block(EXAMPLE, "cs3-polarization", TABLE)
    out = replace_block(EXAMPLE, "verdicts", "new")
    assert out == EXAMPLE.replace("stale", "new")
    crlf = EXAMPLE.replace("\n", "\r\n")
    assert [b.name for b in read_blocks(crlf)] == ["verdicts"]


def test_a_fence_never_closed_that_hides_a_marker_is_refused():
    page = "```\n<!-- BEGIN t -->\nx\n<!-- END t -->\n"
    with pytest.raises(InputError, match=re.escape("page.md: a code fence opened on line 1")):
        read_blocks(page, "page.md")
    assert read_blocks("text\n```\nno marker after it\n") == []  # nothing hidden: fine
    # ``` indented 4 spaces is text of an indented code block: it opens no fence that would
    # hide the real block after it.
    indented = "    ```\n    code\n\n<!-- BEGIN t -->\n<!-- END t -->\n```\nx\n```\n"
    assert [b.name for b in read_blocks(indented)] == ["t"]
    assert [b.name for b in read_blocks("> ```\n> <!-- BEGIN t -->\n> ```\n")] == []
    # A backtick "fence" with a backtick after it is inline code, not a fence.
    assert [b.name for b in read_blocks("```a` b\n<!-- BEGIN t -->\n<!-- END t -->\n")] == ["t"]


def test_results_leaves_the_marker_syntax_shown_in_a_code_fence_alone(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(EXAMPLE)
    (tmp_path / "runs").mkdir()
    with pytest.warns(UserWarning, match="only the verdicts were judged anew"):
        assert regenerate(tmp_path / "runs", doc) == ["verdicts"]
    text = doc.read_text()
    head = EXAMPLE[: EXAMPLE.index("<!-- BEGIN verdicts -->")]
    assert text.startswith(head + "<!-- BEGIN verdicts -->\n| claim |") and "stale" not in text
