"""stemhook: receives, keeps and normalizes the completion callbacks of cloud audio jobs."""
