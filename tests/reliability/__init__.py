"""Reliability: real server processes killed, flooded, cut off from their database, attacked.

Each test prints the figures it held (load, faults, inputs tried, deliveries lost); run with
`pytest -s tests/reliability` to see them.
"""
