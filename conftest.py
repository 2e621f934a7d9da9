"""Loads the kata's pytest plugin (kata/plugin.py); everything else lives there."""

pytest_plugins = ["kata.plugin"]
