"""One module per screen; each owns its key bindings (the help screen lists them)."""
