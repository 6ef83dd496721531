"""Polling's figures: polls per second the background process sustains against a fast fake
provider on loopback, and ingest throughput while 10,000 registered jobs' polls are due against
none (bench/polling/__main__.py)."""
