"""Reusable widgets: each renders plain core data (events, params) and posts typed messages."""
