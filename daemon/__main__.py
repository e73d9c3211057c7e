"""``python -m daemon`` is the ``ingestd`` command."""

from daemon.cli import main

raise SystemExit(main())
