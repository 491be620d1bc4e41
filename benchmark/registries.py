"""The registry instances. Built-in entries live in the modules named here and register on import."""

from __future__ import annotations

from typing import Any

from .refs import install_resolvers
from .registry import Registry
from .types import Method, ProbeProtocol

METHODS: Registry[type[Method]] = Registry(
    "method", builtins=("baselines", "method"), entry_point_group="lgm_bench.methods", base=Method
)
BACKBONES: Registry[Any] = Registry("backbone", builtins=("benchmark.backbones",))
DATASETS: Registry[Any] = Registry("dataset", builtins=("benchmark.data",))
SUITES: Registry[Any] = Registry("suite", builtins=("benchmark.suites",))
PROBES: Registry[type[ProbeProtocol]] = Registry("probe", builtins=("benchmark.probe",), base=ProbeProtocol)
# timm:/open_clip:/hf: backbones and folder:/parquet:/hub: datasets by reference (docs/references.md)
install_resolvers(BACKBONES, DATASETS)
