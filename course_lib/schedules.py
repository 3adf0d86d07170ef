"""Learning-rate schedules shared by the course's two trainings (lesson 05's fine-tune and lesson
09's decoder trained from scratch)."""

from __future__ import annotations


def warmup_linear_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    r"""Learning-rate multiplier at optimizer step ``step`` (0-based).

    .. math:: f(s) = \begin{cases} s / w & s < w \\ \max(0, (T - s) / (T - w)) & s \ge w \end{cases}

    with ``w = warmup_steps`` and ``T = total_steps``: a linear ramp from 0 to 1, then a linear
    decay to 0 at the last step. (The same curve as
    ``transformers.get_linear_schedule_with_warmup``.)
    """
    if total_steps <= 0 or warmup_steps < 0:
        raise ValueError(
            f"need total_steps > 0 and warmup_steps >= 0, got {total_steps}, {warmup_steps}"
        )
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
