"""``python -m daemon`` is the ``ingestd`` command."""

from daemon.commands.cli import main

raise SystemExit(main())
