"""Teachers write the trajectories the agents learn from (see ``scripted`` and ``llm``)."""

from labkit.teachers.scripted import GoldenTeacher, TrialTeacher

__all__ = ["GoldenTeacher", "TrialTeacher"]
