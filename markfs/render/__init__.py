"""Streaming writers: Arrow record batches into Parquet, CSV and JSON lines files."""
