"""Many trainings at once (`lstmvision fanout`): the trainings a `dvc repro` would run, each as its own job on
this machine's devices or on a SLURM cluster, so that the `dvc repro` after them finds every one finished.

A job is `python -m stages train NAME --seed S [--scale X]`: it writes its own work folder and MLflow run
only, under the training's lock, so jobs never share a file and a stopped one resumes from its checkpoint.
"""
