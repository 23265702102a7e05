"""The thin layer DVC calls: one module per stage, each validating params and writing its outs atomically."""
