"""Which task a training loop trains (spec §1.6 choose_task_func, pitfall 20)."""

from __future__ import annotations


def round_robin(loop: int, ntasks: int) -> int:
    """0-based task trained in 1-based loop ``loop``: the reference's ``iloop % ntasks + 1``.

    With two tasks loop 1 trains the reference's task 2 (our task 1), loop 2 task 0, and so on.
    """
    if ntasks < 1:
        raise ValueError(f"round_robin: ntasks = {ntasks} must be at least 1")
    if loop < 1:
        raise ValueError(f"round_robin: loop = {loop} must be at least 1 (loops are 1-based)")
    return loop % ntasks
