"""Benchmarks: the MovieNet-calibrated proxy benchmark (docs/proxy_benchmark.md)."""

from .proxy import ProxyBenchmark, write_proxy_benchmark
from .proxy_stats import (
    MOVIENET_TEST_FIGURES,
    context_rule_scores,
    neighbour_cosine_ap,
    neighbour_cosine_scores,
    proxy_statistics,
)

__all__ = [
    "MOVIENET_TEST_FIGURES",
    "ProxyBenchmark",
    "context_rule_scores",
    "neighbour_cosine_ap",
    "neighbour_cosine_scores",
    "proxy_statistics",
    "write_proxy_benchmark",
]
