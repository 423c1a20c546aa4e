"""A faithful Shopify simulator: Admin GraphQL subset, OAuth, staged uploads, webhooks."""

from .app import create_app
from .config import DEMO_API_KEY, DEMO_API_SECRET, ShopifySimConfig
from .tokens import mint_session_token

__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "ShopifySimConfig",
    "create_app",
    "mint_session_token",
]
