"""Tests reuse idle apps (``tests/conftest.py::app_for``) keyed by the settings that shape an
app: a setting ``create_app`` starts reading must join that key, or a test would be served
by an app shaped for other settings."""

from __future__ import annotations

import ast
import inspect

import pytest

from finsync.api import app as app_module
from tests.conftest import APP_SETTINGS

pytestmark = pytest.mark.unit


def _settings_read(function: object) -> set[str]:
    tree = ast.parse(inspect.getsource(function))  # type: ignore[arg-type]
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "settings"
    }


def test_the_reuse_key_is_exactly_what_an_app_reads_of_its_settings() -> None:
    read = _settings_read(app_module.create_app) | _settings_read(app_module.edge_stack)
    assert read == APP_SETTINGS
