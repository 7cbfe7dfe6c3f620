"""The HTTP API through a real ``runplane serve`` per store, a module per route module of
``runplane.server`` (the server is started once per store for the package)."""
