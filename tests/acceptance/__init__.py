"""Acceptance tests: real ``runplane`` processes (serve, worker, migrate, demo, clients),
started, awaited and stopped through ``support.processes``."""
