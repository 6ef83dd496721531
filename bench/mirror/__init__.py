"""Mirroring's figures: result-file throughput, and callback latency while a file streams in."""
