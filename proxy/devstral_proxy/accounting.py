"""What happens when a reply is complete (or abandoned): the request is counted in the
metrics and written to the access log, from its record.
"""

from typing import Any


class Accounting:
    def __init__(self, metrics, access, routes: set[str]) -> None:
        self.metrics = metrics
        self.access = access  # AccessLog, or None when access lines are off
        self.routes = routes  # route labels; any other path counts as "other"
        self.tracing: Any = None  # tracing.Tracing, when [tracing] is on: a request's spans when it ends

    def finished(self, record, now: float) -> None:
        if not record.rid:
            return  # refused by the parser: never handled
        self.metrics.in_flight -= 1
        duration = now - record.t0
        first = record.t_first - record.t0 if record.t_first else None
        overhead = None
        if record.t_sent:
            overhead = record.t_sent - record.t0
            if record.t_upstream_end:
                overhead += now - record.t_upstream_end
        route = record.route if record.route in self.routes else "other"
        self.metrics.observe(route, record.model, record.backend, record.status, duration, overhead, first, record.usage)
        if record.variant:
            self.metrics.count_variant(record.model, record.variant)
        if self.access is not None:
            self.access.log(record, duration, first)
        if self.tracing is not None:
            self.tracing.end(record, now)
