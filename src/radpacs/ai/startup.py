"""What the server does for AI at start: the service (models, queue) and the arrival rules."""

from __future__ import annotations

from radpacs.ai.service import AiService
from radpacs.ai.triggers import ArrivalRule, ArrivalWatcher
from radpacs.archive import Archive
from radpacs.jobs import Jobs
from radpacs.settings import Settings

__all__ = ["start_ai"]


def start_ai(settings: Settings, archive: Archive, jobs: Jobs) -> tuple[AiService, ArrivalWatcher]:
    service = AiService(settings, archive, jobs)
    watcher = ArrivalWatcher(service, [ArrivalRule.parse(raw) for raw in settings.ai_rules])
    watcher.start()
    return service, watcher
