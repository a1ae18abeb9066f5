"""Datasets: Jamendo / MUSDB18-HQ / CSV sources, the feature cache, excerpt sampling and the
offline demo corpus builder. Heavy modules (singers, demo) are imported on demand."""

from xai_core.data.cache import FeatureCache, default_cache_dir
from xai_core.data.sampler import ExcerptSampler, track_excerpts
from xai_core.data.sources import (
    Track,
    TrackEntry,
    csv_tracks,
    jamendo_tracks,
    load_tracks,
    musdb_tracks,
    read_jamendo_index,
)

__all__ = ["ExcerptSampler", "FeatureCache", "Track", "TrackEntry", "csv_tracks", "default_cache_dir",
           "jamendo_tracks", "load_tracks", "musdb_tracks", "read_jamendo_index", "track_excerpts"]
