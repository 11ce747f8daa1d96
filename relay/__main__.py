"""``python -m relay`` runs the ``notify-relay`` command."""

from relay.cli.main import main

raise SystemExit(main())
