"""Benchmarks: the MovieNet-calibrated proxy benchmark (docs/proxy_benchmark.md)."""

from .proxy import ProxyBenchmark, write_proxy_benchmark
from .proxy_stats import MOVIENET_TEST_FIGURES, neighbour_cosine_ap, proxy_statistics

__all__ = [
    "MOVIENET_TEST_FIGURES",
    "ProxyBenchmark",
    "neighbour_cosine_ap",
    "proxy_statistics",
    "write_proxy_benchmark",
]
