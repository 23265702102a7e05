"""MLflow: the store and a training's run, the model registry and served model, the team server."""
