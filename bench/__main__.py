"""`python -m bench` lists the benchmarks; `python -m bench NAME [options]` runs one."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))
    if not argv or argv[0] in {"-h", "--help", "list"}:
        print("usage: python -m bench NAME [options]   (NAME --help for its options)\n")
        for name in names:
            doc = ast.get_docstring(ast.parse((HERE / f"{name}.py").read_text())) or ""
            print(f"  {name:<24} {doc.splitlines()[0] if doc else ''}")
        return 0
    name = argv[0].replace("-", "_")
    if name not in names:
        print(f"no benchmark named '{argv[0]}'; known: {', '.join(names)}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"bench.{name}").main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
