"""Teachers write the trajectories the agents learn from (see ``scripted`` and ``llm``)."""

from labkit.teachers.scripted import GoldenTeacher, RecoverTeacher, TrialTeacher

__all__ = ["GoldenTeacher", "RecoverTeacher", "TrialTeacher"]
