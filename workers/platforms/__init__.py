"""Pure protocol code for the labeling platforms' own APIs (signers, payloads, response decoding)."""
