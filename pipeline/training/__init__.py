"""One training run from a spec, whatever the task: the Lightning loop, its callbacks, DDP, resume keys."""
