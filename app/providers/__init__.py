"""Provider payload families: pure parsers from callback bytes to normalized jobs."""
