"""The command line's side of the ``progress(done, total, info)`` callback: a tqdm bar."""

from __future__ import annotations

from collections.abc import Sequence


def tqdm_progress(desc: str, keys: Sequence[str] = ()):
    """A progress callback drawing a tqdm bar; ``info`` entries named in ``keys`` go in its postfix
    (floats to 4 significant digits). Never cancels. Call ``.close()`` on it when done."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="step", dynamic_ncols=True, mininterval=1.0)

    def progress(done, total, info):
        bar.total = total
        bar.n = done
        bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in info.items() if k in keys},
                        refresh=False)
        bar.refresh()
        return True

    progress.close = bar.close  # type: ignore[attr-defined]
    return progress
