"""The web UI at / and the OHIF viewer at /viewer/ (pages, static files, viewer mount)."""

from radpacs.web.ohif import OHIF_VERSION, default_viewer_dir, install_viewer, installed_version

__all__ = ["OHIF_VERSION", "default_viewer_dir", "install_viewer", "installed_version"]
