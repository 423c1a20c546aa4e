"""Run the Shopify simulator standalone (`pikcel-jobs sim shopify`)."""

from __future__ import annotations

import uvicorn

from .app import create_app
from .config import ShopifySimConfig


def main(
    host: str = "127.0.0.1",
    port: int = 8002,
    seed: int = 1,
    public_url: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    shops: tuple[str, ...] | list[str] | None = None,
    products_per_shop: int = 36,
    bucket_size: float = 1000.0,
    restore_rate: float = 50.0,
    media_processing_seconds: float = 2.0,
    auto_create_shops: bool = True,
    log_level: str = "info",
) -> None:
    """Serve the simulator with uvicorn until interrupted.

    `api_key`/`api_secret` default to SHOPIFY_API_KEY/SHOPIFY_API_SECRET (then a demo
    pair); `public_url` defaults to http://{host}:{port}.
    """
    config = ShopifySimConfig(
        seed=seed,
        public_url=public_url or f"http://{host}:{port}",
        products_per_shop=products_per_shop,
        bucket_size=bucket_size,
        restore_rate=restore_rate,
        media_processing_seconds=media_processing_seconds,
        auto_create_shops=auto_create_shops,
    )
    if api_key:
        config.api_key = api_key
    if api_secret:
        config.api_secret = api_secret
    if shops:
        config.shops = tuple(shops)
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)


if __name__ == "__main__":  # pragma: no cover
    main()
