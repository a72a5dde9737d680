"""Finding the models at start: entry points of ``radpacs.models``, the ``ai_plugins``
setting (``module:attribute``) and the ONNX manifests in ``ai_models_dir``.

An entry point names a model class (instantiated without arguments), a model instance, or
a factory called with the :class:`~radpacs.settings.Settings` that returns models (see
:mod:`radpacs.ai.interface`). A plugin that fails to load is listed in the registry's
``errors`` and does not stop the server.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

from radpacs.ai.builtin.onnx_runner import load_manifests
from radpacs.ai.interface import ENTRY_POINT_GROUP, Model, ModelRegistry
from radpacs.errors import ConfigurationError
from radpacs.settings import Settings

__all__ = ["discover_models"]

log = logging.getLogger(__name__)


def _expand(loaded: Any, settings: Settings) -> Iterable[Any]:
    if isinstance(loaded, type):
        return [loaded()]
    if isinstance(loaded, Model):
        return [loaded]
    if callable(loaded):
        return list(loaded(settings))
    return [loaded]


def _import(name: str) -> Any:
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise ConfigurationError(f"plugin {name!r} is not of the form module:attribute")
    return getattr(importlib.import_module(module_name), attribute)


def _importer(name: str) -> Callable[[], Any]:
    return lambda: _import(name)


def discover_models(settings: Settings) -> ModelRegistry:
    """Entry points of ``radpacs.models``, the ``ai_plugins`` setting, ONNX manifests."""
    registry = ModelRegistry()
    sources: list[tuple[str, Callable[[], Any]]] = [
        (f"entry point {ep.name}", ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]
    sources += [(f"plugin {name}", _importer(name)) for name in settings.ai_plugins]
    for source, load in sources:
        try:
            for model in _expand(load(), settings):
                registry.add(model, source)
        except Exception as exc:  # a broken plugin must not stop the server
            log.warning("model %s failed to load: %s", source, exc)
            registry.errors[source] = f"{type(exc).__name__}: {exc}"
    if settings.ai_models_dir is not None:
        for path, model_or_error in load_manifests(settings.ai_models_dir):
            if isinstance(model_or_error, str):
                registry.errors[f"manifest {path.name}"] = model_or_error
            else:
                registry.add(model_or_error, f"manifest {path.name}")
    return registry
