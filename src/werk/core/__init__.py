"""Shared kernel: settings, the error tree, logging, time and the relational database."""
