"""Progress bars for the long stages of a command: tqdm on stderr, named by the stage.

One rule for every bar: it shows the stage's name, the count done, the rate and the time left
(tqdm's ETA, once it knows the total), and it is drawn only on a terminal. With
``enabled=False`` (a command's ``--no-progress``) there is none, and a stderr that is not a
terminal (a CI log, a redirect to a file) gets none either, so logs hold no carriage-return
updates. A finished bar clears its line (``leave=False``), so the lines a command prints stay
readable; a trainer's bar (:func:`training_bar`) stays, as the run's summary. :func:`shown` is the
same rule for a function that takes a ``progress`` flag.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable


def shown(enabled: bool = True) -> bool:
    """Whether to draw progress: asked for (``enabled``) and stderr is a terminal. What a
    function that takes ``progress=`` gets from a command, so its bars follow the same rule."""
    return bool(enabled) and sys.stderr.isatty()


def bar(
    iterable: Iterable | None = None,
    desc: str = "",
    total: int | None = None,
    unit: str = "it",
    enabled: bool = True,
):
    """``iterable`` wrapped in a progress bar (or, with none, a bar to ``update()`` and
    ``close()`` by hand, of ``total`` steps).

    Example::

        for task in bar(tasks, desc="Figure 2: maml seed 0", unit="task"):
            ...
    """
    from tqdm import tqdm

    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        disable=not shown(enabled),
    )


def training_bar(total: int, initial: int, desc: str, enabled: bool = True):
    """The bar of a trainer's loop over iterations ``initial+1 .. total`` (a resumed run starts
    part-way); it stays on screen when done, with the loop's last postfix (loss, accuracy)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not shown(enabled),  # a terminal only: logs get no bar
        dynamic_ncols=True,
        desc=desc,
    )
