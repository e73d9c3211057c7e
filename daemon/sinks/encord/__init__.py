"""The Encord sink: signed v2 API calls (client) and upload jobs polled to their end (sink)."""
