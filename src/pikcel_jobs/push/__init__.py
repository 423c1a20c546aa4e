"""Push finished images to Shopify products: queue (or hold for review), push in the
worker step by step with checkpoints, replace, revert; and the products route."""
