"""Read-side queries for the API: machines, series, latest values, downsampled history."""

from hub.query.completeness import MinuteCompleteness, completeness
from hub.query.downsample import Plan, merge_buckets, plan_history
from hub.query.reads import ReadQueries, SeriesInfo

__all__ = [
    "MinuteCompleteness",
    "Plan",
    "ReadQueries",
    "SeriesInfo",
    "completeness",
    "merge_buckets",
    "plan_history",
]
