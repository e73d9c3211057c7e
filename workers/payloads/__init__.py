"""msgspec Structs and pure builders for the platforms' payloads."""
