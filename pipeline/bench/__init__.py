"""Benchmarks behind the report's Cost section and `lstmvision bench`: speed as ratios measured in one run
(speed.py), and the evaluation's memory (memory.py, kept apart so that its probe processes import only the
evaluation, not Lightning)."""
