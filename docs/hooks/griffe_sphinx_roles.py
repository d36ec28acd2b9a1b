"""Griffe extension: render the reST habits of repsim's docstrings as Markdown.

The docstrings stay plain for ``help()``; only the rendered API pages change:

- roles such as ``:func:`cca``` or ``:class:`~repsim.protocol.MetaLearner``` become code spans
  (``~`` keeps the last component, as in Sphinx);
- a paragraph ending in ``::`` before an indented block ends in ``:``, and the block becomes a
  fenced Python block.
"""

from __future__ import annotations

import re
import textwrap

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
_LITERAL_BLOCK = re.compile(r"::\n\n((?:[ \t]+\S.*\n?|[ \t]*\n(?=[ \t]+\S))+)")


def _role(m: re.Match) -> str:
    name = m.group(2)
    return f"`{name.rsplit('.', 1)[-1] if m.group(1) else name}`"


def _fence(m: re.Match) -> str:
    block = textwrap.dedent(m.group(1)).rstrip("\n")
    return f":\n\n```python\n{block}\n```\n"


def markdown(text: str) -> str:
    return _LITERAL_BLOCK.sub(_fence, _ROLE.sub(_role, text))


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
