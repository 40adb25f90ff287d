"""Leaderboard generator (tables, plots, static page, Hub publishing) — built on stored RunResults."""
