"""Simulators of PikcelAI and Shopify (never imported by pikcel_jobs)."""
