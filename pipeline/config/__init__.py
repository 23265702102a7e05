"""params.yaml: its schema (validated in one phase), each architecture's options, profile overlays."""
