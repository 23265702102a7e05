"""The user tools of `lstmvision` (no DVC stage runs these): check, profile, classify, upscale,
benchmark-sr, fetch, team."""
