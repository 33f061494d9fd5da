"""Framework-neutral learning-rate schedules and monitor-driven controllers.

``make_schedule("gap-threshold:decay=0.1,patience=3", total_steps=...)`` builds one by name;
every schedule implements ``genwindow.schedules.base.Schedule``.
"""

from genwindow.schedules.base import Action, Schedule, read_metric
from genwindow.schedules.registry import available, make_schedule

__all__ = ["Action", "Schedule", "available", "make_schedule", "read_metric"]
