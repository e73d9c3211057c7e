"""Platform protocols (sans-I/O): request documents, response decoding, payload framing."""
