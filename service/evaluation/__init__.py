"""Continuous evaluation: the sampled payload log and ground-truth feedback (live accuracy).

Both hear of answered requests as listeners of the inference core (``events.Answered``).
"""
