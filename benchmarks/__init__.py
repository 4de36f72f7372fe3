"""Benchmarks: `benchmarks/bench_<area>.py` modules, each with `run(quick) -> list[dict]`, run by `benchmarks.run`."""
