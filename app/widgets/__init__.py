"""Widgets the dashboard's screens share, and the run screen's tabs."""
