"""The platforms' documented rules as data, and pure checks of a probe result against them."""
