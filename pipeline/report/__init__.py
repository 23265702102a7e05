"""Report time: statistics and calls, tables, figures, rendering, published figures, champions and the
regression gate. No train or evaluate stage imports this package."""
