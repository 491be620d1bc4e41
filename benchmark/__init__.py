"""lgm-bench: a benchmark harness for dataset distillation on frozen pretrained vision backbones."""

__version__ = "0.1.0"
