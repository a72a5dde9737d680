"""The HTTP layer every router shares: dependencies (:mod:`.deps`), domain errors to
responses (:mod:`.errors`), the access-control middleware (:mod:`.access`), audit
recording (:mod:`.audit`) and route matching (:mod:`.routes`).

The routers themselves live in :mod:`radpacs.api` (REST), :mod:`radpacs.dicomweb` and
:mod:`radpacs.web`; domain packages never import this one.
"""
