"""Benchmarks: each prints ratios against a baseline measured in the same run, and the command that made them."""
