"""A griffe extension for the API pages: shows docstring examples as Python sessions.

tt's docstrings write their doctests as plain `>>>` lines under "Example:", which Markdown
would read as nested block quotes (and a printed list as a link). This wraps each run of
`>>>` lines and the output after it, up to a blank line, in a `pycon` code block. It changes
only what the documentation shows, never the docstring the code and the doctests see.
"""

import griffe


def fence_doctests(text):
    """`text` with each doctest run (`>>>` up to a blank line) inside a fenced `pycon` block.

    >>> fence_doctests("Example:\\n>>> 1 + 1\\n2\\n\\nMore.").split("\\n")
    ['Example:', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'More.']
    """
    out, fence = [], None  # fence: the indentation of the open block, None outside one
    for line in text.split("\n"):
        indent = line[: len(line) - len(line.lstrip())]
        if fence is None and line.lstrip().startswith(">>>"):
            fence = indent
            if out and out[-1].strip():
                out.append("")  # a block of its own, not the end of a paragraph
            out.append(fence + "```pycon")
        elif fence is not None and not line.strip():
            out.append(fence + "```")
            fence = None
        out.append(line)
    if fence is not None:
        out.append(fence + "```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    def on_instance(self, *, node, obj, agent, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
