"""Shopify clients: session tokens, access tokens, Admin GraphQL, media push, webhooks.

Nothing here touches the database; the push orchestration and the routes call these.
"""
