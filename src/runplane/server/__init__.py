"""runplane's HTTP API (LangGraph Agent Server protocol): ``server.app.create_app`` builds
the ASGI app, ``server.serve.run_server`` runs it (``runplane serve``)."""
