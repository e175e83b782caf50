"""finsync: self-hosted financial data aggregation."""

__version__ = "0.1.0"
