"""Media probing: sans-I/O header parsers and the driver that feeds them ranged reads."""
