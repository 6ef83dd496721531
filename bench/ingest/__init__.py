"""The ingest benchmark: stemhook's callback endpoints under wrk, beside two references.

    make bench        # or: .venv/bin/python -m bench.ingest [--quick] [--help]

Modules, in the order the data flows: payloads (the fixtures, a fresh job id per request), lua
(wrk's scripts), wrk (running it, reading its result), servers and databases (stemhook and the
references, each on a database of its own), reference (the two reference endpoints), run (the
phases, side by side), parsers (timeit per payload), profile (py-spy), facts (machine and
commit), figures (medians and ratios), report (BENCHMARKS.md), cli.
"""
