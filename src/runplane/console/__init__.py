"""The web console at ``/ui``: runs live, their steps, trees and event logs, threads and
their interrupts, assistants; the stop button. Server-rendered pages (Jinja2) and one small
script of its own, every asset served by runplane, so it works offline. Each action goes
through the same :class:`~runplane.service.RunService` rules, and the same guards, as the
API's."""
