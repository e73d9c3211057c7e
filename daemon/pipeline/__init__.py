"""The pipeline: intake -> probe+build -> batch -> deliver -> commit, its stages, tracking and drain."""
