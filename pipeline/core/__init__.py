"""What every layer uses: one-line errors, atomic writes and job locks, host facts, code deps and digests.
Imports nothing of ours."""
