"""Unit tests: pure code, no database and no process (the transition table, sweep order, stream
rendering, wire and config helpers, URL redaction). Each runs in milliseconds."""
