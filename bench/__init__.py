"""Benchmarks. Each module here with a `main(argv) -> int` is one benchmark; `python -m bench`
lists them and `python -m bench NAME [options]` runs one. Results go to docs/benchmarks.md."""
