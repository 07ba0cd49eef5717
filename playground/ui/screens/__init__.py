"""Screens of the playground app."""
