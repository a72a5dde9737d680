"""radpacs: a medical-imaging archive for radiology, radiotherapy and AI research.

The public surface is small: build a server with :func:`radpacs.app.create_app`, configure it
with :class:`radpacs.settings.Settings`, and work with stored DICOM through
:class:`radpacs.archive.Archive`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
