"""lstmvision library: data, image maths, models, training, tracking and reports (no DVC here)."""
