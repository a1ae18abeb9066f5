"""Metrics: the Fréchet distance (FID) used to select activation-maximisation configurations."""

from xai_core.metrics.fid import feature_statistics, fid_from_features, frechet_distance, trace_sqrt_product

__all__ = ["feature_statistics", "fid_from_features", "frechet_distance", "trace_sqrt_product"]
