"""Fetching the result files that callbacks name: addresses a stranger may have chosen."""
