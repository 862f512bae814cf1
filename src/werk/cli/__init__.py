"""The `werk` command line."""
