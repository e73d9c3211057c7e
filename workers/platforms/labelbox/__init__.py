"""Labelbox's GraphQL ingestion protocol, sans-I/O (shared/ref/labelbox.md sections 0-6).

* :mod:`.specs`: data-row specs spliced from encoded rows, streamed into <= 10 MB chunks.
* :mod:`.graphql`: the documents, the ``uploadFile`` multipart body, answer classification.
* :mod:`.metadata`: ``metadata_fields`` by name -> schema ids through the metadata ontology.
* :mod:`.results`: a finished task's failed rows mapped back to our global keys.
* :mod:`.project`: the project read, the processed check, batches (sync and async), batch names.
* :mod:`.imports`: MAL / ground-truth import documents, import names, status file lines.
"""
