"""External AI apps called back by radpacs (the callback pattern of docs/ai-apps.md).

An admin registers an app (its URL and what it accepts); radpacs sends it an analysis
request with a token scoped to one study, retries the delivery through the job queue, and
turns the app's typed JSON result (:mod:`radpacs.client.apps`) into DICOM in the study.
"""
