"""Read-side queries for the API: machines, series, latest values, downsampled history."""

from hub.query.completeness import MinuteCompleteness, Outage, completeness, median_rate
from hub.query.downsample import Plan, merge_buckets, plan_history
from hub.query.reads import ReadQueries, SeriesInfo

__all__ = [
    "MinuteCompleteness",
    "Outage",
    "Plan",
    "ReadQueries",
    "SeriesInfo",
    "completeness",
    "median_rate",
    "merge_buckets",
    "plan_history",
]
