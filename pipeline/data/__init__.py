"""Datasets from source to prepared arrays: sources and verified downloads, idx files, the classification
split, SR patches, and the batch order every training reads."""
