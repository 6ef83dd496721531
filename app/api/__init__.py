"""Thin HTTP routers over the receive pipeline and the read queries."""
