"""Our own copy of every output (providers delete theirs) and its thumbnail.

A small interface so a bucket can replace the local directory; keys look like
`{shop}/{job_id}/{attempt}/output.png`."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from pathlib import Path
from typing import Protocol

from PIL import Image

THUMBNAIL_SIZE = (320, 320)


class ImageStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def exists(self, key: str) -> bool: ...
    async def delete_prefix(self, prefix: str) -> None: ...


class LocalImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("storage key escapes the storage directory")
        return path

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # readers never see half a file

        await asyncio.to_thread(write)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        await asyncio.to_thread(shutil.rmtree, path, True)


def make_thumbnail(data: bytes) -> bytes:
    """A PNG no larger than THUMBNAIL_SIZE, keeping transparency."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        thumb = image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image.copy()
        thumb.thumbnail(THUMBNAIL_SIZE)
        out = io.BytesIO()
        thumb.save(out, format="PNG", optimize=True)
        return out.getvalue()


def image_format(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return (image.format or "PNG").lower()
