"""Demo secrets: made once per checkout and kept in ./var, unless the environment or
`.env` names them (so another program can start the demo with known secrets)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

DEMO_SHOP = "demo-shop.myshopify.com"
NAMES = ("shopify_api_key", "shopify_api_secret", "pikcel_api_key", "pikcel_webhook_secret",
         "session_secret", "token_encryption_key")  # fmt: skip


def demo_secrets(var_dir: Path) -> dict[str, str]:
    path = var_dir / "demo-secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {name: secrets.token_urlsafe(24) for name in NAMES}
    values["shopify_api_key"] = "demo-" + secrets.token_hex(8)
    values["pikcel_api_key"] = "pk_demo_" + secrets.token_hex(12)
    var_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values
