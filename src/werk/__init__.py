"""werk: an open-source platform for a connected Industry 4.0 ecosystem."""

__version__ = "0.1.0"
