"""The ``notify-relay`` command: one module per verb, registered in :mod:`relay.cli.main`."""
