"""The model's columns and the data rules every stage agrees on (DESIGN.md §3, §8)."""

from __future__ import annotations

LABEL = "total_amount"
FEATURES: tuple[str, ...] = ("duration_minutes", "passenger_count", "trip_distance")
COLUMNS: tuple[str, ...] = (LABEL, *FEATURES)

# Exclusive bounds a trip must fall inside to be kept for training.
TOTAL_AMOUNT_RANGE = (0.0, 200.0)
DURATION_RANGE = (0.0, 120.0)
TRIP_DISTANCE_RANGE = (0.0, 121.0)

# TLC column prefixes: green cabs write lpep_*, yellow cabs tpep_*.
PICKUP_COLUMNS = ("lpep_pickup_datetime", "tpep_pickup_datetime")
DROPOFF_COLUMNS = ("lpep_dropoff_datetime", "tpep_dropoff_datetime")
RAW_NUMERIC_COLUMNS = ("passenger_count", "trip_distance", "total_amount")

# The train / validation / test fractions and the seed that makes the split repeatable.
SPLIT_FRACTIONS = (0.80, 0.15, 0.05)
SPLIT_SEED = 1337
