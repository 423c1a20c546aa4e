"""pikcel-jobs: job tracking for the PikcelAI Shopify app."""
