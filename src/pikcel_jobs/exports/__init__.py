"""Exports of the jobs list (CSV and Excel), streamed in keyset batches."""
